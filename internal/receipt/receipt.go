// Package receipt decides what providers' receipts mean: it maps a Twilio
// status callback, a Twilio inbound message or a SendGrid event to a
// delivery state and to what the user's preferences should learn, and
// applies a receipt to a delivery. Pure functions; the HTTP side lives in
// internal/inbound and the status writes in internal/controller.
package receipt

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Receipt is one provider event about one message Herald sent.
type Receipt struct {
	// Provider is the provider type ("twilio", "sendgrid"), for metrics.
	Provider string
	// Notification, UID and MessageID name the delivery: Herald puts them in
	// the Twilio StatusCallback URL and in SendGrid's custom args.
	Notification types.NamespacedName
	UID          types.UID
	MessageID    string
	// ProviderMessageID is the provider's id for the message (MessageSid,
	// sg_message_id); it must agree with the delivery's when both are known.
	ProviderMessageID string
	// Event is the provider's own name for what happened (delivered, bounce...).
	Event string
	// State is Delivered or Failed, or "" when the event changes no state
	// (a spam report arrives after the message was delivered).
	State   v1alpha1.DeliveryState
	Reason  string
	Message string
	Time    time.Time
	// Learn, when set, is the reason to record the address as unsubscribed
	// on the user's status (Bounced, SpamReport, Unsubscribed).
	Learn string
	// Via is the provider whose signature the receipt carried
	// (Kind/name); it must be the provider the delivery went through.
	Via string
	// Address is the raw address the event is about, for learning; it is
	// hashed before it is stored and never logged.
	Address string
}

// Result is what Apply did.
type Result int

const (
	// Applied: the delivery changed.
	Applied Result = iota
	// Duplicate: the delivery already records this (a replayed or repeated
	// receipt), or a later state that it does not undo.
	Duplicate
	// NotYet: the delivery is not recorded as sent yet (the receipt overtook
	// the dispatcher's outcome); try again shortly.
	NotYet
	// Mismatch: the provider's message id disagrees with the delivery's.
	Mismatch
)

func (r Result) String() string {
	switch r {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case NotYet:
		return "not_yet"
	}
	return "mismatch"
}

// Apply records r on d. Receipts only follow an acceptance: a delivery not
// yet Sent is NotYet. Sent may become Delivered or Failed; Delivered may
// still become Failed by a bounce (mail servers bounce after accepting);
// nothing else moves, so receipts arriving twice or out of order change
// nothing the second time.
func Apply(d *v1alpha1.Delivery, r Receipt) Result {
	if d.ProviderMessageID != "" && r.ProviderMessageID != "" && !sameMessage(d.ProviderMessageID, r.ProviderMessageID) {
		return Mismatch
	}
	switch d.State {
	case v1alpha1.DeliverySent, v1alpha1.DeliveryDelivered:
	default:
		if d.State.Terminal() {
			return Duplicate // Failed (after a receipt or not), Suppressed...: final
		}
		return NotYet
	}
	t := metav1.NewTime(r.Time)
	switch {
	case r.State == v1alpha1.DeliveryDelivered && d.State == v1alpha1.DeliverySent:
		d.State, d.Reason, d.Message, d.DeliveredTime = v1alpha1.DeliveryDelivered, "", "", &t
		return Applied
	case r.State == v1alpha1.DeliveryFailed && (d.State == v1alpha1.DeliverySent || r.Reason == v1alpha1.ReasonBounced):
		d.State, d.Reason, d.Message = v1alpha1.DeliveryFailed, r.Reason, r.Message
		return Applied
	}
	return Duplicate
}

// sameMessage compares provider ids; SendGrid's event ids extend the
// X-Message-Id the send returned ("<id>.filter...").
func sameMessage(recorded, got string) bool {
	return got == recorded || strings.HasPrefix(got, recorded+".")
}
