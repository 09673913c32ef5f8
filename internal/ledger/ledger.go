// Package ledger keeps the notification log: it folds dispatch outcomes into
// a Notification's deliveries and computes, in one place, the summary, the
// phase and the kstatus outcome that the conditions report.
package ledger

import (
	"crypto/sha256"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/plan"
	"github.com/herald-dev/herald/senders"
)

// maxMessage bounds a delivery's message (the API allows 1024).
const maxMessage = 512

// Folded is what a reconcile's outcomes did to one delivery.
type Folded struct {
	// Ended: the delivery became terminal now (count it, forget its job).
	Ended bool
	// Released: the dispatcher no longer holds the job (it ended, was
	// dropped, or was cut short).
	Released bool
	// Learn is the reason of a permanent error that teaches the user's
	// preference (DeviceUnregistered, Unsubscribed); "" otherwise.
	Learn string
}

// Fold applies the outcomes reported for one delivery, oldest first. A job
// the dispatcher dropped before its attempt is left as its status says, to
// be planned again; one cut short mid-send is planned again too, except
// under AtMostOnce, where it may have been sent and becomes Unknown.
func Fold(d *v1alpha1.Delivery, outcomes []dispatch.Outcome, mode v1alpha1.DeliveryMode) Folded {
	var f Folded
	was := d.State.Terminal()
	for _, o := range outcomes {
		switch {
		case o.State == dispatch.Interrupted && mode == v1alpha1.AtMostOnce && !d.State.Terminal():
			Interrupt(d)
		case o.State == dispatch.Dropped || o.State == dispatch.Interrupted:
		default:
			// The provider that answered, or that ended the job without
			// a call (its circuit open, the job expired in its queue).
			if Apply(d, o) && (o.Attempted || o.State.Terminal()) && o.Provider != "" {
				d.Provider = o.Provider
			}
			if o.State.Terminal() && !was && d.State.Terminal() && o.Err != nil && learns(o.Err.Reason) {
				f.Learn = o.Err.Reason
			}
		}
		if o.State.Terminal() || o.State == dispatch.Dropped || o.State == dispatch.Interrupted {
			f.Released = true
		}
	}
	f.Ended = !was && d.State.Terminal()
	return f
}

func learns(reason string) bool {
	return reason == v1alpha1.ReasonDeviceUnregistered || reason == v1alpha1.ReasonUnsubscribed
}

// Interrupt ends a delivery that may have been sent but must not be sent
// again (AtMostOnce): Unknown, reason Interrupted.
func Interrupt(d *v1alpha1.Delivery) {
	d.State, d.Reason, d.NextAttemptTime = v1alpha1.DeliveryUnknown, v1alpha1.ReasonInterrupted, nil
	d.Message = "the manager stopped while this message was being sent; delivery is AtMostOnce, so it is not sent again"
}

// Apply records one dispatch outcome on d. It is idempotent and never moves a
// delivery backwards: an outcome older than what d already records, or any
// outcome for a delivery already terminal, changes nothing. It reports whether
// d changed.
func Apply(d *v1alpha1.Delivery, o dispatch.Outcome) bool {
	if d.State.Terminal() || o.Attempt < int(d.Attempts) {
		return false
	}
	if o.State == dispatch.Dropped || o.State == dispatch.Interrupted {
		// Not an end: the job is planned again as its status says.
		return false
	}
	before := *d
	if o.Attempted {
		d.Attempts = int32(o.Attempt)
		start := metav1.NewTime(o.Start)
		if d.FirstAttemptTime == nil {
			d.FirstAttemptTime = &start
		}
		d.LastAttemptTime = &start
	}
	d.NextAttemptTime = nil
	switch o.State {
	case dispatch.Sent:
		end := metav1.NewTime(o.End)
		d.State, d.Reason, d.Message = v1alpha1.DeliverySent, "", ""
		d.SentTime = &end
		d.ProviderMessageID = Cut(o.Result.ProviderMessageID, 256)
		if d.Attempts == 1 {
			// sentTime says when: two fewer timestamps in the record the
			// API server decodes and validates on every status write.
			d.FirstAttemptTime, d.LastAttemptTime = nil, nil
		}
	case dispatch.Retrying:
		next := metav1.NewTime(o.NextAttempt)
		d.State, d.NextAttemptTime = v1alpha1.DeliveryRetrying, &next
		d.Reason, d.Message = errReason(o), errMessage(o)
	case dispatch.Failed:
		d.State, d.Reason, d.Message = v1alpha1.DeliveryFailed, errReason(o), errMessage(o)
	case dispatch.Expired:
		d.State, d.Reason, d.Message = v1alpha1.DeliveryExpired, v1alpha1.ReasonExpired, "not delivered before it expired"
		if o.Err != nil {
			d.Message += "; last error: " + errMessage(o)
		}
	}
	return !equalDelivery(before, *d)
}

func errReason(o dispatch.Outcome) string {
	if o.Err == nil || o.Err.Reason == "" {
		return v1alpha1.ReasonProviderError
	}
	return o.Err.Reason
}

func errMessage(o dispatch.Outcome) string {
	if o.Err == nil {
		return ""
	}
	return Cut(o.Err.Error(), maxMessage)
}

// Cut shortens s to at most n bytes (so at most n characters, as the
// schema's MaxLength counts), ending in "..." when it cut, never inside a
// UTF-8 sequence.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 3 {
		return senders.Truncate(s, n)
	}
	return senders.Truncate(s, n-3) + "..."
}

// Clamp cuts every string of d to its schema limit, so a status write can
// never be refused for one: a refused write would stall the Notification
// and re-send it on every restart.
func Clamp(d *v1alpha1.Delivery) {
	d.ID = Cut(d.ID, 64)
	d.Recipient = Cut(d.Recipient, 253)
	d.Address = Cut(d.Address, 128)
	d.Provider = Cut(d.Provider, 300)
	d.Reason = senders.Truncate(d.Reason, 64)
	d.ProviderMessageID = Cut(d.ProviderMessageID, 256)
	d.Message = Cut(d.Message, 1024)
	for i := range d.TriedProviders {
		d.TriedProviders[i] = Cut(d.TriedProviders[i], 300)
	}
}

func equalDelivery(a, b v1alpha1.Delivery) bool {
	return a.State == b.State && a.Reason == b.Reason && a.Message == b.Message && a.Attempts == b.Attempts &&
		a.ProviderMessageID == b.ProviderMessageID && timeEq(a.FirstAttemptTime, b.FirstAttemptTime) &&
		timeEq(a.LastAttemptTime, b.LastAttemptTime) && timeEq(a.NextAttemptTime, b.NextAttemptTime) && timeEq(a.SentTime, b.SentTime)
}

func timeEq(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// MessageID is the message id of the job jobID (a Notification's uid and a
// delivery's id): a UUID derived from it, so a repeat after a crash carries
// the same id (APNs apns-id, email Message-ID) and folds into the first,
// and a provider's receipt naming it leads back to the delivery.
func MessageID(jobID string) string {
	h := sha256.Sum256([]byte(jobID))
	h[6] = (h[6] & 0x0f) | 0x50 // version 5 layout
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Summarize counts deliveries by outcome. With channel fallback, a
// recipient reached on one fallback channel counts its failures on the
// others as suppressed: the fallback did its job, and the Notification is
// Sent, not PartiallySent (each delivery still records what happened).
func Summarize(ds []v1alpha1.Delivery, fallback []v1alpha1.Channel) v1alpha1.DeliverySummary {
	reached := map[string]bool{}
	if len(fallback) > 0 {
		for _, d := range ds {
			if reachedBy(d.State) && plan.Rank(fallback, d.Channel) >= 0 {
				reached[plan.RecipientOf(d.ID)] = true
			}
		}
	}
	var s v1alpha1.DeliverySummary
	for _, d := range ds {
		st := d.State
		if failed(st) && len(reached) > 0 && plan.Rank(fallback, d.Channel) >= 0 && reached[plan.RecipientOf(d.ID)] {
			st = v1alpha1.DeliverySuppressed
		}
		s.Add(st)
	}
	return s
}

func reachedBy(st v1alpha1.DeliveryState) bool {
	return st == v1alpha1.DeliverySent || st == v1alpha1.DeliveryDelivered
}

func failed(st v1alpha1.DeliveryState) bool {
	return st == v1alpha1.DeliveryFailed || st == v1alpha1.DeliveryExpired || st == v1alpha1.DeliveryUnknown
}

// FallbackStep is what a delivery on a fallback channel may do.
type FallbackStep int

const (
	// FallbackGo: send it (the first channel, or every earlier one ended
	// without reaching the recipient).
	FallbackGo FallbackStep = iota
	// FallbackWait: an earlier channel may still reach the recipient.
	FallbackWait
	// FallbackNotNeeded: an earlier channel reached the recipient.
	FallbackNotNeeded
)

// Fallback decides a delivery at rank (its channel's position in
// spec.fallback; -1 when not there) from the states of the same
// recipient's deliveries on the earlier fallback channels, and says why
// when it is not sent now.
func Fallback(rank int, earlier []v1alpha1.DeliveryState) (FallbackStep, string) {
	if rank <= 0 {
		return FallbackGo, ""
	}
	if slices.ContainsFunc(earlier, reachedBy) {
		return FallbackNotNeeded, "an earlier channel in spec.fallback reached the recipient"
	}
	if slices.ContainsFunc(earlier, func(st v1alpha1.DeliveryState) bool { return !st.Terminal() }) {
		return FallbackWait, "sent only if the earlier channels in spec.fallback do not reach the recipient"
	}
	return FallbackGo, ""
}

// Verdict is what the deliveries say about the whole Notification.
type Verdict struct {
	Phase v1alpha1.NotificationPhase
	// Finished: every delivery is terminal.
	Finished bool
	// Ready, Stalled, Reason and Message feed the kstatus conditions.
	Ready   bool
	Stalled bool
	Reason  string
	Message string
}

// Judge computes the phase from a summary (children included). expired
// reports whether every undelivered delivery ended Expired; started whether
// any attempt was made.
func Judge(s v1alpha1.DeliverySummary, expired, started bool) Verdict {
	switch {
	case s.Total == 0:
		return Verdict{Phase: v1alpha1.PhaseSuppressed, Finished: true, Ready: true, Reason: v1alpha1.ReasonNoRecipients, Message: "no recipient matched"}
	case s.Pending > 0:
		v := Verdict{Phase: v1alpha1.PhasePending, Reason: v1alpha1.ReasonPlanned}
		if started || s.Sent+s.Failed > 0 {
			v.Phase, v.Reason = v1alpha1.PhaseSending, v1alpha1.ReasonSending
		}
		v.Message = fmt.Sprintf("%d of %d deliveries pending", s.Pending, s.Total)
		return v
	case s.Sent > 0 && s.Failed == 0:
		return Verdict{Phase: v1alpha1.PhaseSent, Finished: true, Ready: true, Reason: v1alpha1.ReasonAllSent, Message: counts(s)}
	case s.Sent == 0 && s.Failed == 0:
		return Verdict{Phase: v1alpha1.PhaseSuppressed, Finished: true, Ready: true, Reason: v1alpha1.ReasonSuppressedAll, Message: counts(s)}
	case s.Sent > 0:
		return Verdict{Phase: v1alpha1.PhasePartiallySent, Finished: true, Stalled: true, Reason: v1alpha1.ReasonSomeFailed, Message: counts(s)}
	case expired:
		return Verdict{Phase: v1alpha1.PhaseExpired, Finished: true, Stalled: true, Reason: v1alpha1.ReasonExpired, Message: counts(s)}
	default:
		return Verdict{Phase: v1alpha1.PhaseFailed, Finished: true, Stalled: true, Reason: v1alpha1.ReasonAllFailed, Message: counts(s)}
	}
}

func counts(s v1alpha1.DeliverySummary) string {
	return fmt.Sprintf("%d sent, %d failed, %d suppressed of %d", s.Sent, s.Failed, s.Suppressed, s.Total)
}

// maxTried bounds a delivery's triedProviders (the API allows 6).
const maxTried = 6

// FailsOver reports whether a delivery that just ended should move to a
// fallback provider: a provider failed it for its own sake, and had not
// been tried before (a chain never loops).
func FailsOver(d *v1alpha1.Delivery) bool {
	return d.State == v1alpha1.DeliveryFailed && v1alpha1.ProviderLevel(d.Reason) && d.Provider != "" &&
		len(d.TriedProviders) < maxTried && !slices.Contains(d.TriedProviders, d.Provider)
}

// FailOver records that d's provider failed it and it goes to next: the
// failed provider joins triedProviders, and d is Pending again with a
// fresh attempt count (each provider gets its own retries).
func FailOver(d *v1alpha1.Delivery, next string) {
	msg := fmt.Sprintf("%s failed (%s: %s); trying %s", d.Provider, d.Reason, d.Message, next)
	if d.Provider != "" {
		d.TriedProviders = append(d.TriedProviders, d.Provider)
	}
	d.State, d.Reason, d.Attempts, d.NextAttemptTime = v1alpha1.DeliveryPending, v1alpha1.ReasonFailedOver, 0, nil
	d.Message = Cut(msg, maxMessage)
}
