package receipt

import (
	"encoding/json"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ledger"
)

// SendGridEvent is the part of one Event Webhook event Herald reads. The
// herald_* keys are the custom args senders/sendgrid sets on every message;
// SendGrid returns them as top-level keys of each event.
type SendGridEvent struct {
	Email        string `json:"email"`
	Timestamp    int64  `json:"timestamp"`
	Event        string `json:"event"`
	SGMessageID  string `json:"sg_message_id"`
	Reason       string `json:"reason"`
	Type         string `json:"type"`
	MessageID    string `json:"herald_message_id"`
	Notification string `json:"herald_notification"`
	UID          string `json:"herald_notification_uid"`
}

// ParseSendGrid decodes an Event Webhook body (a JSON array of events).
func ParseSendGrid(body []byte) ([]SendGridEvent, error) {
	var evs []SendGridEvent
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// FromSendGrid maps one event. ok is false when it names no delivery of
// Herald's (mail another system sent through the same account).
func FromSendGrid(ev SendGridEvent, now time.Time) (Receipt, bool) {
	ns, name, found := strings.Cut(ev.Notification, "/")
	if !found || ns == "" || name == "" || ev.MessageID == "" {
		return Receipt{}, false
	}
	r := Receipt{Provider: "sendgrid", Notification: types.NamespacedName{Namespace: ns, Name: name}, UID: types.UID(ev.UID),
		MessageID: ev.MessageID, ProviderMessageID: ev.SGMessageID, Event: ev.Event, Time: now, Address: ev.Email}
	if ev.Timestamp > 0 {
		r.Time = time.Unix(ev.Timestamp, 0)
	}
	reason := ledger.Cut(ev.Reason, 400)
	switch ev.Event {
	case "delivered":
		r.State = v1alpha1.DeliveryDelivered
	case "bounce":
		r.State, r.Reason, r.Message = v1alpha1.DeliveryFailed, v1alpha1.ReasonBounced, "the receiving server refused the message: "+reason
		if ev.Type == "blocked" {
			// A block is the receiving server's policy now (reputation,
			// content), not a dead address: not learned.
			r.Reason, r.Message = "Blocked", "the receiving server blocked the message: "+reason
		} else {
			r.Learn = v1alpha1.ReasonBounced
		}
	case "dropped":
		r.State, r.Reason, r.Message = v1alpha1.DeliveryFailed, v1alpha1.ReasonDropped, "SendGrid did not send the message: "+reason
	case "spamreport":
		r.Learn = v1alpha1.ReasonSpamReport
	case "unsubscribe", "group_unsubscribe":
		r.Event, r.Learn = "unsubscribe", v1alpha1.ReasonUnsubscribed
	default:
		r.Event = "other"
	}
	return r, true
}

func typesUID(s string) types.UID { return types.UID(s) }
