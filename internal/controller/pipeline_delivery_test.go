package controller_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/senders/fake"
)

// One user on every channel, each through a provider talking to its fake:
// one delivery per address, each recorded with its attempt, send time and
// the provider's message id, and each fake received exactly its message.
func TestSingleUserAllChannels(t *testing.T) {
	ns := namespace(t, "all-channels")
	sg := sendgridFake(t, ns, nil)
	tw := twilioFake(t, ns, nil)
	fc := fcmFake(t, ns, nil)
	room := webhookFake(t, ns, "room", true, nil)
	tok1, tok2 := fcmToken("alice1"), fcmToken("alice2")
	user(t, ns, "alice", v1alpha1.UserPreferenceSpec{
		Email: "alice@example.com", Phone: "+14155550101",
		Devices: []v1alpha1.Device{{Platform: v1alpha1.PlatformAndroid, Token: tok1, Name: "phone"}, {Platform: v1alpha1.PlatformWeb, Token: tok2, Name: "laptop"}},
	}, nil)
	n := notif(ns, "build", v1alpha1.Recipient{User: "alice"}, v1alpha1.Recipient{Webhook: "room"})
	create(t, n)

	got := waitFinished(t, ns, "build", v1alpha1.PhaseSent)
	if len(got.Status.Deliveries) != 6 {
		t.Fatalf("want 6 deliveries (email, sms, 2 push, the user's webhook, the room), got %s", deliveriesString(got))
	}
	want := map[string]struct {
		provider, address string
	}{
		"r0/email":   {"ChannelProvider/sendgrid", "a***@example.com"},
		"r0/sms":     {"ChannelProvider/twilio", "+141******01"},
		"r0/push/0":  {"ChannelProvider/fcm", tok1[:6] + "…"},
		"r0/push/1":  {"ChannelProvider/fcm", tok2[:6] + "…"},
		"r1/webhook": {"ChannelProvider/room", "room"},
	}
	for id, w := range want {
		d := delivery(t, got, id)
		if d.State != v1alpha1.DeliverySent || d.Attempts != 1 || d.SentTime == nil || d.FirstAttemptTime != nil ||
			d.LastAttemptTime != nil || (d.ProviderMessageID == "") != (d.Channel == v1alpha1.ChannelWebhook) || d.Provider != w.provider || d.Address != w.address {
			t.Errorf("%s: %+v, want Sent once by %s to %s with a provider message id (webhooks give none), sentTime standing for the attempt times", id, d, w.provider, w.address)
		}
	}
	if d := delivery(t, got, "r0/webhook"); d.State != v1alpha1.DeliverySuppressed || d.Reason != v1alpha1.ReasonNoAddress {
		t.Errorf("the user's webhook delivery: %+v, want Suppressed NoAddress", d)
	}
	if got.Status.Summary != (v1alpha1.DeliverySummary{Total: 6, Sent: 5, Suppressed: 1}) {
		t.Errorf("summary %+v", got.Status.Summary)
	}
	if got.Status.StartTime == nil || got.Status.CompletionTime == nil || got.Status.CompletionTime.Before(got.Status.StartTime) {
		t.Errorf("start %v completion %v", got.Status.StartTime, got.Status.CompletionTime)
	}

	if a := sg.Accepted(); len(a) != 1 || a[0].Mail.Personalizations[0].To[0].Email != "alice@example.com" || a[0].Mail.Personalizations[0].Subject != "Build 1234" && a[0].Mail.Subject != "Build 1234" {
		t.Errorf("sendgrid accepted %+v", a)
	} else if id := delivery(t, got, "r0/email").ProviderMessageID; id != a[0].MessageID {
		t.Errorf("email providerMessageID %q, sendgrid gave %q", id, a[0].MessageID)
	}
	if a := tw.Accepted(); len(a) != 1 || a[0].To != "+14155550101" || a[0].Body != "Build 1234 failed" {
		t.Errorf("twilio accepted %+v", a)
	} else if id := delivery(t, got, "r0/sms").ProviderMessageID; id != a[0].SID {
		t.Errorf("sms providerMessageID %q, twilio gave %q", id, a[0].SID)
	}
	var tokens []string
	for _, r := range fc.Received.All() {
		if r.Status == http.StatusOK {
			tokens = append(tokens, r.Token)
		}
	}
	slices.Sort(tokens)
	if want := []string{tok1, tok2}; !slices.Equal(tokens, want) {
		t.Errorf("fcm received %v, want %v", tokens, want)
	}
	if a := room.Accepted(); len(a) != 1 || !strings.Contains(string(a[0].Body), "Build 1234 failed") || a[0].Path != "/hooks/room" {
		t.Errorf("webhook accepted %+v", a)
	}

	ev := waitEvent(t, got, v1alpha1.ReasonAllSent)
	if ev.Type != corev1.EventTypeNormal {
		t.Errorf("event %s %s", ev.Type, ev.Note)
	}
	noFullAddress(t, got, "alice@example.com", "+14155550101", tok1, tok2)
}

// The happy path of a single-recipient Notification costs one write after
// its create: the status that says Sent. No metadata write marks it
// finished (the phase does) and no Normal Event is recorded.
func TestSingleRecipientOneStatusWrite(t *testing.T) {
	ns := namespace(t, "one-write")
	tw := twilioFake(t, ns, nil)
	for i := range 5 {
		name := fmt.Sprintf("one-%d", i)
		w := watchStatus(t, ns, name)
		create(t, notif(ns, name, v1alpha1.Recipient{Phone: "+14155550102"}))
		waitFinished(t, ns, name, v1alpha1.PhaseSent)
		// Anything still on its way (a second reconcile of the outcome, a
		// stale cache) would land within a few flush delays.
		time.Sleep(300 * time.Millisecond)
		writes, meta := w.stop()
		t.Logf("%s: %d status writes, %d metadata writes", name, writes, meta)
		if writes != 1 || meta != 0 {
			t.Errorf("%s: %d status writes and %d other writes, want 1 and 0", name, writes, meta)
		}
	}
	var events eventsv1.EventList
	if err := env.Client.List(ctxT(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Regarding.Kind == "Notification" {
			t.Errorf("Event %s %s on %s: a Notification that went well records none", e.Type, e.Reason, e.Regarding.Name)
		}
	}
	if n := len(tw.Accepted()); n != 5 {
		t.Errorf("twilio accepted %d, want 5", n)
	}
}

// Transient errors are retried with backoff until one attempt succeeds;
// every attempt is counted.
func TestTransientErrorsThenSuccess(t *testing.T) {
	ns := namespace(t, "transient")
	tw := twilioFake(t, ns, nil)
	tw.Script.Push(fake.Fault{Status: 503}, fake.Fault{Status: 500})
	create(t, notif(ns, "flaky", v1alpha1.Recipient{Phone: "+14155550103"}))
	got := waitFinished(t, ns, "flaky", v1alpha1.PhaseSent)
	d := delivery(t, got, "r0/sms")
	if d.Attempts != 3 || d.State != v1alpha1.DeliverySent || d.Reason != "" || d.Message != "" || d.NextAttemptTime != nil {
		t.Errorf("delivery %+v, want Sent on the 3rd attempt with the error cleared", d)
	}
	// Status times have a resolution of one second (metav1.Time).
	if d.FirstAttemptTime == nil || d.LastAttemptTime == nil || d.LastAttemptTime.Before(d.FirstAttemptTime) {
		t.Errorf("first %v last %v", d.FirstAttemptTime, d.LastAttemptTime)
	}
	rs := tw.Received.All()
	if len(rs) != 3 || rs[0].Status != 503 || rs[1].Status != 500 || rs[2].Status != 201 {
		t.Errorf("twilio received %d requests: %+v", len(rs), rs)
	}
}

// A permanent error ends the delivery at once: the fake sees one request,
// the Notification fails with a Warning Event, and nothing names the number.
func TestPermanentErrorNotRetried(t *testing.T) {
	ns := namespace(t, "permanent")
	tw := twilioFake(t, ns, nil)
	tw.Script.Push(fake.Fault{Reason: "21211"})
	n := notif(ns, "bad", v1alpha1.Recipient{Phone: "+14155550104"})
	create(t, n)
	got := waitFinished(t, ns, "bad", v1alpha1.PhaseFailed)
	d := delivery(t, got, "r0/sms")
	if d.State != v1alpha1.DeliveryFailed || d.Reason != "InvalidAddress" || d.Attempts != 1 {
		t.Errorf("delivery %+v, want Failed InvalidAddress after 1 attempt", d)
	}
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAllFailed {
		t.Errorf("Stalled %+v", c)
	}
	ev := waitEvent(t, got, v1alpha1.ReasonAllFailed)
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Note, "+141******04") || !strings.Contains(ev.Note, "InvalidAddress") {
		t.Errorf("event %s %q, want a Warning naming the masked number and the reason", ev.Type, ev.Note)
	}
	time.Sleep(500 * time.Millisecond) // longer than any backoff: a retry would have come
	if n := tw.Received.Len(); n != 1 {
		t.Errorf("twilio received %d requests, want 1", n)
	}
	noFullAddress(t, got, "+14155550104")
}

// A 429 with Retry-After holds the next attempt back at least that long,
// though the provider's own backoff is much shorter.
func TestRetryAfterHonoured(t *testing.T) {
	ns := namespace(t, "retry-after")
	tw := twilioFake(t, ns, nil)
	tw.Script.Push(fake.Fault{Reason: "20429", RetryAfter: time.Second})
	create(t, notif(ns, "limited", v1alpha1.Recipient{Phone: "+14155550105"}))
	got := waitFinished(t, ns, "limited", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/sms"); d.Attempts != 2 {
		t.Errorf("delivery %+v, want 2 attempts", d)
	}
	rs := tw.Received.All()
	if len(rs) != 2 || rs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("twilio received %+v", rs)
	}
	gap := rs[1].Time.Sub(rs[0].Time)
	t.Logf("gap between attempts: %s", gap)
	if gap < time.Second {
		t.Errorf("second attempt %s after the 429, want at least the Retry-After of 1s", gap)
	}
}

// A provider that hangs past its timeout does not hold up another
// provider's delivery of the same Notification.
func TestHangingProviderDoesNotDelayOthers(t *testing.T) {
	ns := namespace(t, "hanging")
	tw := twilioFake(t, ns, nil)
	slow := webhookFake(t, ns, "slow", true, func(s *v1alpha1.ChannelProviderSpec) {
		s.Timeout = &metav1.Duration{Duration: 700 * time.Millisecond}
		s.Retry = fastRetry(3)
	})
	slow.Script.SetLatency(10 * time.Second)
	start := time.Now()
	create(t, notif(ns, "mixed", v1alpha1.Recipient{Webhook: "slow"}, v1alpha1.Recipient{Phone: "+14155550106"}))
	eventually(t, func() error {
		n := getNotif(t, ns, "mixed")
		for _, d := range n.Status.Deliveries {
			if d.ID == "r1/sms" && d.State == v1alpha1.DeliverySent {
				return nil
			}
		}
		return fmt.Errorf("sms not sent yet: %s", deliveriesString(n))
	})
	took := time.Since(start)
	n := getNotif(t, ns, "mixed")
	if d := delivery(t, n, "r0/webhook"); d.State.Terminal() {
		t.Errorf("webhook delivery already %s when the sms was recorded", d.State)
	}
	if rs := tw.Accepted(); len(rs) != 1 || rs[0].Time.Sub(start) > time.Second {
		t.Errorf("twilio accepted %+v, %s after the Notification was created", rs, rs[0].Time.Sub(start))
	}
	t.Logf("sms recorded Sent %s after creation", took)
	if took > 2*time.Second {
		t.Errorf("sms recorded after %s, want well within the slow provider's timeout and retries", took)
	}
	got := waitFinished(t, ns, "mixed", v1alpha1.PhasePartiallySent)
	if d := delivery(t, got, "r0/webhook"); d.State != v1alpha1.DeliveryFailed || d.Reason != "Timeout" || d.Attempts != 3 {
		t.Errorf("webhook delivery %+v, want Failed Timeout after 3 attempts", d)
	}
	ev := waitEvent(t, got, v1alpha1.ReasonSomeFailed)
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("event %s %q", ev.Type, ev.Note)
	}
	noFullAddress(t, got, "+14155550106")
}

// With no provider for the channel, deliveries wait (ProviderNotReady) and
// go as soon as one is Ready.
func TestProviderNotReadyThenCreated(t *testing.T) {
	ns := namespace(t, "provider-later")
	n := notif(ns, "early", v1alpha1.Recipient{Phone: "+14155550107"})
	create(t, n)
	msg := waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProviderNotReady)
	if !strings.Contains(msg, "sms") {
		t.Errorf("Reconciling message %q does not name the channel", msg)
	}
	if d := delivery(t, n, "r0/sms"); d.State != v1alpha1.DeliveryPending || d.Reason != v1alpha1.ReasonProviderNotReady {
		t.Errorf("delivery %+v", d)
	}
	start := time.Now()
	tw := twilioFake(t, ns, nil)
	waitFinished(t, ns, "early", v1alpha1.PhaseSent)
	t.Logf("sent %s after the provider was created", time.Since(start))
	if len(tw.Accepted()) != 1 {
		t.Errorf("twilio accepted %d", len(tw.Accepted()))
	}
}

// A provider that stops being Ready while a send is in its queue drops the
// job unreported; the delivery waits for a provider again instead of
// trusting the lost job, and goes when the provider is back.
func TestProviderGoneWhileInFlight(t *testing.T) {
	ns := namespace(t, "provider-gone")
	tw := twilioFake(t, ns, nil)
	tw.Script.Push(fake.Fault{Latency: 5 * time.Second})
	create(t, notif(ns, "stranded", v1alpha1.Recipient{Phone: "+14155550108"}))
	// The fake logs a request when it answers; this one is held for 5s.
	// Nothing shows it in flight, so give the pipeline a moment to send it.
	time.Sleep(500 * time.Millisecond)
	if tw.Received.Len() != 0 {
		t.Fatal("the held request was answered")
	}
	var secret corev1.Secret
	if err := env.Client.Get(ctxT(), key(ns, "twilio"), &secret); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctxT(), &secret); err != nil {
		t.Fatal(err)
	}
	n := &v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "stranded", Namespace: ns}}
	waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProviderNotReady)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "twilio", Namespace: ns}, Data: secret.Data})
	got := waitFinished(t, ns, "stranded", v1alpha1.PhaseSent)
	t.Logf("delivery %+v; twilio received %d", delivery(t, got, "r0/sms"), tw.Received.Len())
}

// With the journal, a Notification's outcomes wait for its other sends
// (--status-hold): sends spread over half a second (one at a time, 40 ms
// each) are recorded in one status write. Without the journal every burst
// of outcomes is its own write, each carrying the whole object.
func TestStatusHoldOneWriteForSpreadSends(t *testing.T) {
	const users = 12
	for _, tc := range []struct {
		name    string
		journal bool
		writes  func(int) bool
		want    string
	}{
		{"journal", true, func(w int) bool { return w == 1 }, "1"},
		{"nojournal", false, func(w int) bool { return w > 1 }, "more than 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restartManagerWith(t, func(o *manager.Options) {
				if tc.journal {
					// A hold far longer than the sends, so a slow machine
					// cannot split the write.
					o.JournalDir, o.StatusHold = t.TempDir(), 10*time.Second
				}
			})
			t.Cleanup(func() { restartManagerWith(t, nil) })
			ns := namespace(t, "hold-"+tc.name)
			tw := twilioFake(t, ns, func(s *v1alpha1.ChannelProviderSpec) { s.Concurrency = 1 })
			tw.Script.SetLatency(40 * time.Millisecond)
			var rcpts []v1alpha1.Recipient
			for i := range users {
				rcpts = append(rcpts, v1alpha1.Recipient{Phone: fmt.Sprintf("+1415557%04d", i)})
			}
			w := watchStatus(t, ns, "spread")
			create(t, notif(ns, "spread", rcpts...))
			waitFinished(t, ns, "spread", v1alpha1.PhaseSent)
			time.Sleep(300 * time.Millisecond)
			writes, _ := w.stop()
			t.Logf("%d status writes for %d sends", writes, users)
			if !tc.writes(writes) {
				t.Errorf("%d status writes, want %s", writes, tc.want)
			}
			if n := len(tw.Accepted()); n != users {
				t.Errorf("twilio accepted %d, want %d", n, users)
			}
		})
	}
}
