package controller_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/controller"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/senders/fake"
)

// auditRecord is one captured record, with what status said when it was logged.
type auditRecord struct {
	fields map[string]any
	// stored is the delivery's state in the API server at that moment.
	stored v1alpha1.DeliveryState
}

// One JSON audit record per finished delivery (a sent email, a refused
// SMS), logged only once the status write that records it is stored, with
// the address masked as in status.
func TestAuditRecordPerFinishedDelivery(t *testing.T) {
	var mu sync.Mutex
	var records []auditRecord
	sink := funcr.NewJSON(func(obj string) {
		var f map[string]any
		if err := json.Unmarshal([]byte(obj), &f); err != nil {
			t.Errorf("audit record is not JSON: %v: %s", err, obj)
			return
		}
		r := auditRecord{fields: f}
		var n v1alpha1.Notification
		key := client.ObjectKey{Namespace: f["namespace"].(string), Name: f["notification"].(string)}
		if err := env.Client.Get(context.Background(), key, &n); err == nil {
			for _, d := range n.Status.Deliveries {
				if d.ID == f["delivery"] {
					r.stored = d.State
				}
			}
		}
		mu.Lock()
		records = append(records, r)
		mu.Unlock()
	}, funcr.Options{})
	restartManagerWith(t, func(o *manager.Options) { o.AuditLog, o.AuditLogger = true, sink })
	t.Cleanup(func() { restartManagerWith(t, nil) })

	ns := namespace(t, "audit")
	sendgridFake(t, ns, nil)
	tw := twilioFake(t, ns, nil)
	tw.Script.Push(fake.Fault{Reason: "21211"})
	n := notif(ns, "build-1234", v1alpha1.Recipient{Email: "alice@example.com"}, v1alpha1.Recipient{Phone: "+14155550104"})
	n.Spec.Category = "ci"
	create(t, n)
	got := waitFinished(t, ns, "build-1234", v1alpha1.PhasePartiallySent)
	// A record follows the status write that stores its delivery: the
	// test may see that write first.
	eventually(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range records {
			if r.fields["namespace"] == ns {
				n++
			}
		}
		if n < 2 {
			return errf("%d audit records for %s so far", n, ns)
		}
		return nil
	})

	mu.Lock()
	defer mu.Unlock()
	byDelivery := map[string]auditRecord{}
	for _, r := range records {
		if r.fields["namespace"] != ns {
			continue
		}
		id, _ := r.fields["delivery"].(string)
		if _, dup := byDelivery[id]; dup {
			t.Errorf("two audit records for %s", id)
		}
		byDelivery[id] = r
		raw, _ := json.Marshal(r.fields)
		if strings.Contains(string(raw), "alice@example.com") || strings.Contains(string(raw), "+14155550104") {
			t.Errorf("audit record holds a full address: %s", raw)
		}
		if r.fields["msg"] != controller.AuditMessage {
			t.Errorf("msg %v, want %q", r.fields["msg"], controller.AuditMessage)
		}
	}
	if len(byDelivery) != 2 {
		t.Fatalf("%d audit records for the namespace, want 2: %v", len(byDelivery), records)
	}
	for id, want := range map[string]map[string]any{
		"r0/email": {"channel": "email", "address": "a***@example.com", "provider": "ChannelProvider/sendgrid", "state": "Sent", "reason": "", "attempts": float64(1)},
		"r1/sms":   {"channel": "sms", "address": "+141******04", "provider": "ChannelProvider/twilio", "state": "Failed", "reason": "InvalidAddress", "attempts": float64(1)},
	} {
		r := byDelivery[id]
		for k, v := range want {
			if r.fields[k] != v {
				t.Errorf("%s: %s = %v, want %v", id, k, r.fields[k], v)
			}
		}
		if r.fields["notification"] != "build-1234" || r.fields["uid"] != string(got.UID) || r.fields["category"] != "ci" ||
			r.fields["firstAttemptTime"] == "" || r.fields["lastAttemptTime"] == "" {
			t.Errorf("%s: record %v lacks the Notification or its times", id, r.fields)
		}
		if string(r.stored) != want["state"] {
			t.Errorf("%s: logged while status held %q: the record must follow the status write", id, r.stored)
		}
	}
	if pm := byDelivery["r0/email"].fields["providerMessageID"]; pm == "" || pm != delivery(t, got, "r0/email").ProviderMessageID {
		t.Errorf("providerMessageID %v, want status's %q", pm, delivery(t, got, "r0/email").ProviderMessageID)
	}
}
