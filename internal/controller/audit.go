package controller

import (
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// AuditMessage is the msg of every audit record, for log queries.
const AuditMessage = "delivery finished"

// audit logs one record for a delivery that ended, as the status write
// that records it stored it, after that write (commit), so the log never tells of an end that status
// lost; a failed write brings the outcome back and it is logged once, when
// written. The record outlives the Notification (TTL deletion): it carries
// what the delivery log holds, the address masked as in status, never the
// message content.
func audit(log logr.Logger, n *v1alpha1.Notification, d *v1alpha1.Delivery) {
	if log.GetSink() == nil {
		return
	}
	log.Info(AuditMessage,
		"namespace", n.Namespace,
		"notification", n.Name,
		"uid", string(n.UID),
		"category", n.Spec.Category,
		"idempotencyKey", n.Spec.IdempotencyKey,
		"delivery", d.ID,
		"recipient", d.Recipient,
		"channel", string(d.Channel),
		"address", d.Address,
		"provider", d.Provider,
		"state", string(d.State),
		"reason", d.Reason,
		"attempts", d.Attempts,
		"firstAttemptTime", timeOf(d.FirstAttempt()),
		"lastAttemptTime", timeOf(d.LastAttempt()),
		"sentTime", timeOf(d.SentTime),
		"providerMessageID", d.ProviderMessageID,
		"message", d.Message,
		"created", n.CreationTimestamp.UTC().Format(time.RFC3339),
	)
}

// auditable indexes the written deliveries by ID when there are records to
// log; nil otherwise.
func auditable(log logr.Logger, n *v1alpha1.Notification, ended int) map[string]*v1alpha1.Delivery {
	if ended == 0 || log.GetSink() == nil {
		return nil
	}
	m := make(map[string]*v1alpha1.Delivery, len(n.Status.Deliveries))
	for i := range n.Status.Deliveries {
		m[n.Status.Deliveries[i].ID] = &n.Status.Deliveries[i]
	}
	return m
}

func timeOf(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
