package ledger

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/senders"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func outcome(attempt int, st dispatch.State, start int) dispatch.Outcome {
	return dispatch.Outcome{Key: "ChannelProvider/ns/p", JobID: "uid/r0/sms", Attempt: attempt, Attempted: true,
		Start: at(start), End: at(start), State: st}
}

func TestApply(t *testing.T) {
	transient := senders.Transient(senders.ReasonUnavailable, "503", "service unavailable")
	permanent := senders.Permanent(senders.ReasonInvalidAddress, "21211", "invalid number")
	retrying := outcome(1, dispatch.Retrying, 0)
	retrying.Err, retrying.NextAttempt = transient, at(5)
	sent := outcome(2, dispatch.Sent, 5)
	sent.Result = senders.Result{ProviderMessageID: "SM123"}
	sentFirst := outcome(1, dispatch.Sent, 1)
	failed := outcome(1, dispatch.Failed, 0)
	failed.Err = permanent
	expiredNoAttempt := dispatch.Outcome{Attempt: 3, State: dispatch.Expired, Start: at(9), End: at(9), Err: transient}

	tests := []struct {
		name    string
		from    v1alpha1.Delivery
		apply   []dispatch.Outcome
		want    v1alpha1.Delivery
		changed bool
	}{{
		name:  "retrying records the attempt, reason and next attempt",
		from:  v1alpha1.Delivery{State: v1alpha1.DeliveryPending},
		apply: []dispatch.Outcome{retrying},
		want: v1alpha1.Delivery{State: v1alpha1.DeliveryRetrying, Reason: senders.ReasonUnavailable, Message: transient.Error(), Attempts: 1,
			FirstAttemptTime: mt(0), LastAttemptTime: mt(0), NextAttemptTime: mt(5)},
		changed: true,
	}, {
		name:  "sent after a retry clears the error and keeps the first attempt time",
		from:  v1alpha1.Delivery{State: v1alpha1.DeliveryPending},
		apply: []dispatch.Outcome{retrying, sent},
		want: v1alpha1.Delivery{State: v1alpha1.DeliverySent, Attempts: 2, FirstAttemptTime: mt(0), LastAttemptTime: mt(5),
			SentTime: mt(5), ProviderMessageID: "SM123"},
		changed: true,
	}, {
		name:    "idempotent: the same outcome twice changes nothing the second time",
		from:    v1alpha1.Delivery{State: v1alpha1.DeliveryPending},
		apply:   []dispatch.Outcome{sent, sent},
		want:    v1alpha1.Delivery{State: v1alpha1.DeliverySent, Attempts: 2, FirstAttemptTime: mt(5), LastAttemptTime: mt(5), SentTime: mt(5), ProviderMessageID: "SM123"},
		changed: false,
	}, {
		name:    "sent by the first attempt: sentTime stands for the attempt times",
		from:    v1alpha1.Delivery{State: v1alpha1.DeliveryPending},
		apply:   []dispatch.Outcome{sentFirst},
		want:    v1alpha1.Delivery{State: v1alpha1.DeliverySent, Attempts: 1, SentTime: mt(1)},
		changed: true,
	}, {
		name:    "no regress: an older attempt's outcome after a newer one is ignored",
		from:    v1alpha1.Delivery{State: v1alpha1.DeliveryRetrying, Attempts: 2, FirstAttemptTime: mt(0), LastAttemptTime: mt(3)},
		apply:   []dispatch.Outcome{retrying},
		want:    v1alpha1.Delivery{State: v1alpha1.DeliveryRetrying, Attempts: 2, FirstAttemptTime: mt(0), LastAttemptTime: mt(3)},
		changed: false,
	}, {
		name:    "no regress: a terminal delivery stays as it is",
		from:    v1alpha1.Delivery{State: v1alpha1.DeliverySuppressed, Reason: v1alpha1.ReasonOptedOut},
		apply:   []dispatch.Outcome{sent},
		want:    v1alpha1.Delivery{State: v1alpha1.DeliverySuppressed, Reason: v1alpha1.ReasonOptedOut},
		changed: false,
	}, {
		name:    "permanent failure",
		from:    v1alpha1.Delivery{State: v1alpha1.DeliveryPending},
		apply:   []dispatch.Outcome{failed},
		want:    v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: senders.ReasonInvalidAddress, Message: permanent.Error(), Attempts: 1, FirstAttemptTime: mt(0), LastAttemptTime: mt(0)},
		changed: true,
	}, {
		name:  "expired without an attempt keeps the count and quotes the last error",
		from:  v1alpha1.Delivery{State: v1alpha1.DeliveryRetrying, Attempts: 3, FirstAttemptTime: mt(0), LastAttemptTime: mt(4), NextAttemptTime: mt(8)},
		apply: []dispatch.Outcome{expiredNoAttempt},
		want: v1alpha1.Delivery{State: v1alpha1.DeliveryExpired, Reason: v1alpha1.ReasonExpired, Attempts: 3, FirstAttemptTime: mt(0), LastAttemptTime: mt(4),
			Message: "not delivered before it expired; last error: " + transient.Error()},
		changed: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.from
			var changed bool
			for _, o := range tc.apply {
				changed = Apply(&d, o)
			}
			if !equalDelivery(d, tc.want) || d.Provider != tc.want.Provider {
				t.Errorf("got  %+v\nwant %+v", d, tc.want)
			}
			if changed != tc.changed {
				t.Errorf("last Apply reported changed=%v, want %v", changed, tc.changed)
			}
		})
	}
}

func mt(s int) *metav1.Time { t := metav1.NewTime(at(s)); return &t }

// A long provider message is cut to fit the API's bound.
func TestApplyTruncates(t *testing.T) {
	o := outcome(1, dispatch.Failed, 0)
	o.Err = senders.Permanent(senders.ReasonRejected, "", strings.Repeat("x", 5000))
	o.Result.ProviderMessageID = strings.Repeat("y", 400)
	var d v1alpha1.Delivery
	Apply(&d, o)
	if len(d.Message) > maxMessage {
		t.Errorf("message of %d bytes", len(d.Message))
	}
}

func TestSummarize(t *testing.T) {
	ds := []v1alpha1.Delivery{
		{State: v1alpha1.DeliveryPending}, {State: v1alpha1.DeliveryDeferred}, {State: v1alpha1.DeliverySending}, {State: v1alpha1.DeliveryRetrying},
		{State: v1alpha1.DeliverySent}, {State: v1alpha1.DeliveryDelivered},
		{State: v1alpha1.DeliveryFailed}, {State: v1alpha1.DeliveryExpired},
		{State: v1alpha1.DeliverySuppressed},
	}
	want := v1alpha1.DeliverySummary{Total: 9, Pending: 4, Sent: 2, Failed: 2, Suppressed: 1, Delivered: 1}
	if got := Summarize(ds, nil); got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil, nil); got != (v1alpha1.DeliverySummary{}) {
		t.Errorf("Summarize(nil) = %+v", got)
	}
}

func TestJudge(t *testing.T) {
	sum := func(total, pending, sent, failed, suppressed int32) v1alpha1.DeliverySummary {
		return v1alpha1.DeliverySummary{Total: total, Pending: pending, Sent: sent, Failed: failed, Suppressed: suppressed}
	}
	tests := []struct {
		name             string
		s                v1alpha1.DeliverySummary
		expired, started bool
		phase            v1alpha1.NotificationPhase
		reason           string
		finished, ready  bool
		stalled          bool
	}{
		{"no recipients", sum(0, 0, 0, 0, 0), false, false, v1alpha1.PhaseSuppressed, v1alpha1.ReasonNoRecipients, true, true, false},
		{"planned, nothing tried", sum(2, 2, 0, 0, 0), false, false, v1alpha1.PhasePending, v1alpha1.ReasonPlanned, false, false, false},
		{"an attempt made", sum(2, 2, 0, 0, 0), false, true, v1alpha1.PhaseSending, v1alpha1.ReasonSending, false, false, false},
		{"some sent, some pending", sum(2, 1, 1, 0, 0), false, false, v1alpha1.PhaseSending, v1alpha1.ReasonSending, false, false, false},
		{"all sent", sum(2, 0, 2, 0, 0), false, true, v1alpha1.PhaseSent, v1alpha1.ReasonAllSent, true, true, false},
		{"sent and suppressed", sum(3, 0, 2, 0, 1), false, true, v1alpha1.PhaseSent, v1alpha1.ReasonAllSent, true, true, false},
		{"all suppressed", sum(2, 0, 0, 0, 2), false, false, v1alpha1.PhaseSuppressed, v1alpha1.ReasonSuppressedAll, true, true, false},
		{"partly sent", sum(3, 0, 2, 1, 0), false, true, v1alpha1.PhasePartiallySent, v1alpha1.ReasonSomeFailed, true, false, true},
		{"all failed", sum(2, 0, 0, 2, 0), false, true, v1alpha1.PhaseFailed, v1alpha1.ReasonAllFailed, true, false, true},
		{"all expired", sum(2, 0, 0, 2, 0), true, true, v1alpha1.PhaseExpired, v1alpha1.ReasonExpired, true, false, true},
		{"expired and suppressed", sum(2, 0, 0, 1, 1), true, false, v1alpha1.PhaseExpired, v1alpha1.ReasonExpired, true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.s, tc.expired, tc.started)
			if v.Phase != tc.phase || v.Reason != tc.reason || v.Finished != tc.finished || v.Ready != tc.ready || v.Stalled != tc.stalled {
				t.Errorf("Judge = %+v, want phase %s reason %s finished %v ready %v stalled %v", v, tc.phase, tc.reason, tc.finished, tc.ready, tc.stalled)
			}
			if v.Message == "" {
				t.Error("no message")
			}
			if v.Finished != v.Phase.Finished() || v.Ready != v.Phase.Ready() {
				t.Errorf("verdict %+v disagrees with its phase", v)
			}
		})
	}
}

func TestFold(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sent := dispatch.Outcome{Provider: "ChannelProvider/twilio", Attempt: 1, Attempted: true, Start: t0, End: t0, State: dispatch.Sent,
		Result: senders.Result{ProviderMessageID: "SM1"}}
	retry := dispatch.Outcome{Provider: "ChannelProvider/twilio", Attempt: 1, Attempted: true, Start: t0, End: t0, State: dispatch.Retrying,
		NextAttempt: t0.Add(time.Second), Err: senders.Transient(v1alpha1.ReasonTransientError, "503", "")}
	dead := dispatch.Outcome{Provider: "ChannelProvider/fcm", Attempt: 1, Attempted: true, Start: t0, End: t0, State: dispatch.Failed,
		Err: senders.Permanent(v1alpha1.ReasonDeviceUnregistered, "UNREGISTERED", "")}
	bad := dispatch.Outcome{Attempt: 1, Attempted: true, Start: t0, End: t0, State: dispatch.Failed,
		Err: senders.Permanent(senders.ReasonInvalidAddress, "21211", "")}
	dropped := dispatch.Outcome{State: dispatch.Dropped, Start: t0, End: t0}
	cut := dispatch.Outcome{State: dispatch.Interrupted, Start: t0, End: t0, Err: senders.Transient("NetworkError", "", "context canceled")}
	pending := v1alpha1.Delivery{ID: "r0/sms", State: v1alpha1.DeliveryPending}
	sending := v1alpha1.Delivery{ID: "r0/sms", State: v1alpha1.DeliverySending}
	done := v1alpha1.Delivery{ID: "r0/sms", State: v1alpha1.DeliverySent, Attempts: 1}

	cases := []struct {
		name     string
		d        v1alpha1.Delivery
		outcomes []dispatch.Outcome
		mode     v1alpha1.DeliveryMode
		state    v1alpha1.DeliveryState
		reason   string
		provider string
		want     Folded
	}{
		{"no outcome", pending, nil, v1alpha1.AtLeastOnce, v1alpha1.DeliveryPending, "", "", Folded{}},
		{"sent", pending, []dispatch.Outcome{sent}, v1alpha1.AtLeastOnce, v1alpha1.DeliverySent, "", "ChannelProvider/twilio", Folded{Ended: true, Released: true}},
		{"retrying holds the job", pending, []dispatch.Outcome{retry}, v1alpha1.AtLeastOnce, v1alpha1.DeliveryRetrying, v1alpha1.ReasonTransientError, "ChannelProvider/twilio", Folded{}},
		{"dead device is learned", pending, []dispatch.Outcome{dead}, v1alpha1.AtLeastOnce, v1alpha1.DeliveryFailed, v1alpha1.ReasonDeviceUnregistered, "ChannelProvider/fcm", Folded{Ended: true, Released: true, Learn: v1alpha1.ReasonDeviceUnregistered}},
		{"invalid address is not learned", pending, []dispatch.Outcome{bad}, v1alpha1.AtLeastOnce, v1alpha1.DeliveryFailed, senders.ReasonInvalidAddress, "", Folded{Ended: true, Released: true}},
		{"dropped is planned again", pending, []dispatch.Outcome{dropped}, v1alpha1.AtLeastOnce, v1alpha1.DeliveryPending, "", "", Folded{Released: true}},
		{"cut short, at least once: planned again", pending, []dispatch.Outcome{cut}, v1alpha1.AtLeastOnce, v1alpha1.DeliveryPending, "", "", Folded{Released: true}},
		{"cut short, at most once: unknown", sending, []dispatch.Outcome{cut}, v1alpha1.AtMostOnce, v1alpha1.DeliveryUnknown, v1alpha1.ReasonInterrupted, "", Folded{Ended: true, Released: true}},
		{"dropped, at most once: not sent, planned again", sending, []dispatch.Outcome{dropped}, v1alpha1.AtMostOnce, v1alpha1.DeliverySending, "", "", Folded{Released: true}},
		{"retry then sent", pending, []dispatch.Outcome{retry, func() dispatch.Outcome { o := sent; o.Attempt = 2; return o }()}, v1alpha1.AtLeastOnce, v1alpha1.DeliverySent, "", "ChannelProvider/twilio", Folded{Ended: true, Released: true}},
		{"already terminal: a late outcome changes nothing", done, []dispatch.Outcome{bad}, v1alpha1.AtLeastOnce, v1alpha1.DeliverySent, "", "", Folded{Released: true}},
		{"replayed outcome ends once", pending, []dispatch.Outcome{sent, sent}, v1alpha1.AtLeastOnce, v1alpha1.DeliverySent, "", "ChannelProvider/twilio", Folded{Ended: true, Released: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			got := Fold(&d, tc.outcomes, tc.mode)
			if got != tc.want {
				t.Errorf("Fold = %+v, want %+v", got, tc.want)
			}
			if d.State != tc.state || d.Reason != tc.reason || d.Provider != tc.provider {
				t.Errorf("delivery %s/%s via %q, want %s/%s via %q", d.State, d.Reason, d.Provider, tc.state, tc.reason, tc.provider)
			}
		})
	}
}

// Every string fits its schema limit, counted in characters, and a cut
// never splits a UTF-8 sequence.
func TestClamp(t *testing.T) {
	long := strings.Repeat("ü", 400) // 2 bytes each
	d := v1alpha1.Delivery{ID: strings.Repeat("i", 80), Recipient: long, Address: strings.Repeat("w", 253), Provider: long,
		Reason: strings.Repeat("R", 70), ProviderMessageID: long, Message: long + long + long}
	Clamp(&d)
	for name, c := range map[string]struct {
		s   string
		max int
	}{"id": {d.ID, 64}, "recipient": {d.Recipient, 253}, "address": {d.Address, 128}, "provider": {d.Provider, 300},
		"reason": {d.Reason, 64}, "providerMessageID": {d.ProviderMessageID, 256}, "message": {d.Message, 1024}} {
		if n := len([]rune(c.s)); n > c.max || !utf8.ValidString(c.s) || n < c.max/2-3 {
			t.Errorf("%s: %d characters (valid UTF-8 %v), want at most %d and not cut to nothing", name, n, utf8.ValidString(c.s), c.max)
		}
	}
	short := v1alpha1.Delivery{ID: "r0/sms", Recipient: "alice", Address: "+141******01"}
	want := short
	Clamp(&short)
	if !reflect.DeepEqual(short, want) {
		t.Errorf("Clamp changed what fits: %+v", short)
	}
}

func TestFailOver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     v1alpha1.Delivery
		fails bool
	}{
		{"5xx after retries", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonUnavailable, Provider: "ChannelProvider/a"}, true},
		{"timeout", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonTimeout, Provider: "ChannelProvider/a"}, true},
		{"credentials refused", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonAuthFailed, Provider: "ChannelProvider/a"}, true},
		{"provider not Ready", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonProviderNotReady, Provider: "ChannelProvider/a"}, true},
		{"circuit open", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonCircuitOpen, Provider: "ChannelProvider/a"}, true},
		{"no provider at all (routing already tried the fallbacks)", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonProviderNotReady}, false},
		{"bad address", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonInvalidAddress, Provider: "ChannelProvider/a"}, false},
		{"dead device", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonDeviceUnregistered, Provider: "ChannelProvider/a"}, false},
		{"unsubscribed", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonUnsubscribed, Provider: "ChannelProvider/a"}, false},
		{"message refused", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonPayloadRejected, Provider: "ChannelProvider/a"}, false},
		{"expired", v1alpha1.Delivery{State: v1alpha1.DeliveryExpired, Reason: v1alpha1.ReasonExpired, Provider: "ChannelProvider/a"}, false},
		{"sent", v1alpha1.Delivery{State: v1alpha1.DeliverySent, Provider: "ChannelProvider/a"}, false},
		{"provider already tried (a loop)", v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonUnavailable,
			Provider: "ChannelProvider/a", TriedProviders: []string{"ChannelProvider/a"}}, false},
	} {
		if got := FailsOver(&tc.d); got != tc.fails {
			t.Errorf("%s: FailsOver = %v, want %v", tc.name, got, tc.fails)
		}
	}
	d := v1alpha1.Delivery{State: v1alpha1.DeliveryFailed, Reason: v1alpha1.ReasonUnavailable, Message: "HTTP 503", Attempts: 5, Provider: "ChannelProvider/a"}
	FailOver(&d, "ChannelProvider/b")
	if d.State != v1alpha1.DeliveryPending || d.Reason != v1alpha1.ReasonFailedOver || d.Attempts != 0 ||
		!reflect.DeepEqual(d.TriedProviders, []string{"ChannelProvider/a"}) || !strings.Contains(d.Message, "trying ChannelProvider/b") {
		t.Errorf("after FailOver: %+v", d)
	}
}

func TestChannelFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rank    int
		earlier []v1alpha1.DeliveryState
		want    FallbackStep
	}{
		{"not a fallback channel", -1, []v1alpha1.DeliveryState{v1alpha1.DeliveryPending}, FallbackGo},
		{"the first channel", 0, nil, FallbackGo},
		{"earlier still pending", 1, []v1alpha1.DeliveryState{v1alpha1.DeliveryFailed, v1alpha1.DeliveryRetrying}, FallbackWait},
		{"earlier deferred by quiet hours", 1, []v1alpha1.DeliveryState{v1alpha1.DeliveryDeferred}, FallbackWait},
		{"earlier reached the recipient", 1, []v1alpha1.DeliveryState{v1alpha1.DeliveryFailed, v1alpha1.DeliverySent}, FallbackNotNeeded},
		{"earlier delivered", 2, []v1alpha1.DeliveryState{v1alpha1.DeliveryDelivered}, FallbackNotNeeded},
		{"every earlier one failed or was suppressed", 1, []v1alpha1.DeliveryState{v1alpha1.DeliveryFailed, v1alpha1.DeliverySuppressed}, FallbackGo},
		{"no earlier delivery (no device)", 1, nil, FallbackGo},
	} {
		if got, _ := Fallback(tc.rank, tc.earlier); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A push that failed for a user the SMS fallback reached counts as
	// suppressed; another user's failure still counts.
	fb := []v1alpha1.Channel{v1alpha1.ChannelPush, v1alpha1.ChannelSMS}
	ds := []v1alpha1.Delivery{
		{ID: "r0/push/0", Channel: v1alpha1.ChannelPush, State: v1alpha1.DeliveryFailed},
		{ID: "r0/sms", Channel: v1alpha1.ChannelSMS, State: v1alpha1.DeliverySent},
		{ID: "r0/email", Channel: v1alpha1.ChannelEmail, State: v1alpha1.DeliveryFailed},
		{ID: "r1/push/0", Channel: v1alpha1.ChannelPush, State: v1alpha1.DeliveryFailed},
		{ID: "r1/sms", Channel: v1alpha1.ChannelSMS, State: v1alpha1.DeliveryFailed},
	}
	want := v1alpha1.DeliverySummary{Total: 5, Sent: 1, Failed: 3, Suppressed: 1}
	if got := Summarize(ds, fb); got != want {
		t.Errorf("Summarize with fallback = %+v, want %+v", got, want)
	}
	if got := Summarize(ds, nil); got.Failed != 4 {
		t.Errorf("Summarize without fallback counts %d failed, want 4", got.Failed)
	}
}
