package controller_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
	"github.com/herald-dev/herald/senders/fake"
)

// A channel the user switched off is suppressed; the others go.
func TestChannelOptOut(t *testing.T) {
	ns := namespace(t, "channel-optout")
	sg := sendgridFake(t, ns, nil)
	tw := twilioFake(t, ns, nil)
	user(t, ns, "bob", v1alpha1.UserPreferenceSpec{Email: "bob@example.com", Phone: "+14155550201",
		Channels: &v1alpha1.ChannelSwitches{SMS: ptr.To(false)}}, nil)
	n := notif(ns, "quiet-sms", v1alpha1.Recipient{User: "bob"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelEmail, v1alpha1.ChannelSMS}
	create(t, n)
	got := waitFinished(t, ns, "quiet-sms", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/sms"); d.State != v1alpha1.DeliverySuppressed || d.Reason != v1alpha1.ReasonChannelDisabled || d.Attempts != 0 {
		t.Errorf("sms %+v, want Suppressed ChannelDisabled", d)
	}
	if d := delivery(t, got, "r0/email"); d.State != v1alpha1.DeliverySent {
		t.Errorf("email %+v", d)
	}
	if len(sg.Accepted()) != 1 || tw.Received.Len() != 0 {
		t.Errorf("sendgrid got %d, twilio %d; want 1 and 0", len(sg.Accepted()), tw.Received.Len())
	}
}

// A category the user opted out of is suppressed, unless the Notification is critical.
func TestCategoryOptOutVsCritical(t *testing.T) {
	ns := namespace(t, "category-optout")
	tw := twilioFake(t, ns, nil)
	user(t, ns, "carol", v1alpha1.UserPreferenceSpec{Phone: "+14155550202",
		OptOut: []v1alpha1.OptOut{{Category: "marketing"}}}, nil)

	n := notif(ns, "promo", v1alpha1.Recipient{User: "carol"})
	n.Spec.Channels, n.Spec.Category = []v1alpha1.Channel{v1alpha1.ChannelSMS}, "marketing"
	create(t, n)
	got := waitFinished(t, ns, "promo", v1alpha1.PhaseSuppressed)
	if d := delivery(t, got, "r0/sms"); d.State != v1alpha1.DeliverySuppressed || d.Reason != v1alpha1.ReasonOptedOut {
		t.Errorf("sms %+v, want Suppressed OptedOut", d)
	}
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonSuppressedAll {
		t.Errorf("Ready %+v", c)
	}

	n = notif(ns, "outage", v1alpha1.Recipient{User: "carol"})
	n.Spec.Channels, n.Spec.Category, n.Spec.Priority = []v1alpha1.Channel{v1alpha1.ChannelSMS}, "marketing", v1alpha1.PriorityCritical
	create(t, n)
	got = waitFinished(t, ns, "outage", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/sms"); d.State != v1alpha1.DeliverySent {
		t.Errorf("critical sms %+v", d)
	}
	if a := tw.Accepted(); len(a) != 1 || a[0].To != "+14155550202" {
		t.Errorf("twilio accepted %+v, want the critical one only", a)
	}
}

// Quiet hours defer a delivery until they end, on the user's wall clock;
// it then goes out on its own. The manager's clock is moved to just before
// a minute boundary so a one-minute window ends within the test.
func TestQuietHoursDeferThenSend(t *testing.T) {
	ns := namespace(t, "quiet-hours")
	tw := twilioFake(t, ns, nil)
	loc, err := time.LoadLocation("Asia/Kolkata") // +05:30: the window is not UTC's
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	boundary := now.Truncate(time.Minute).Add(time.Minute)
	if left := boundary.Sub(now); left > 1500*time.Millisecond {
		jump := left - 1500*time.Millisecond
		clk.Advance(jump)
		t.Cleanup(func() { clk.Advance(-jump) })
	}
	start := boundary.Add(-time.Minute).In(loc)
	user(t, ns, "dave", v1alpha1.UserPreferenceSpec{Phone: "+14155550203", TimeZone: "Asia/Kolkata",
		QuietHours: &v1alpha1.QuietHours{Start: start.Format("15:04"), End: boundary.In(loc).Format("15:04")}}, nil)
	n := notif(ns, "night", v1alpha1.Recipient{User: "dave"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelSMS}
	create(t, n)

	deferred := false
	eventually(t, func() error {
		n := getNotif(t, ns, "night")
		if len(n.Status.Deliveries) == 1 && n.Status.Deliveries[0].State == v1alpha1.DeliveryDeferred {
			d := n.Status.Deliveries[0]
			deferred = true
			if d.Reason != v1alpha1.ReasonQuietHours || d.NextAttemptTime == nil || !d.NextAttemptTime.Equal(&metav1.Time{Time: boundary}) {
				t.Errorf("deferred %+v, want QuietHours until %s", d, boundary)
			}
			if n.Status.Phase != v1alpha1.PhasePending {
				t.Errorf("phase %s while deferred", n.Status.Phase)
			}
			return nil
		}
		if n.Status.Phase.Finished() {
			return nil
		}
		return fmt.Errorf("not deferred yet: %s", deliveriesString(n))
	})
	if !deferred {
		t.Fatal("never seen Deferred")
	}
	got := waitFinished(t, ns, "night", v1alpha1.PhaseSent)
	d := delivery(t, got, "r0/sms")
	if d.SentTime == nil || d.SentTime.Time.Before(boundary) || d.Attempts != 1 || d.NextAttemptTime != nil {
		t.Errorf("sent %+v, want after %s", d, boundary)
	}
	if a := tw.Accepted(); len(a) != 1 {
		t.Errorf("twilio accepted %d", len(a))
	}
}

// sendAt in the future: Scheduled until then, then sent.
func TestSendAtScheduledThenSent(t *testing.T) {
	ns := namespace(t, "send-at")
	tw := twilioFake(t, ns, nil)
	at := clk.Now().Truncate(time.Second).Add(2 * time.Second) // the API keeps seconds
	n := notif(ns, "later", v1alpha1.Recipient{Phone: "+14155550204"})
	n.Spec.SendAt = &metav1.Time{Time: at}
	create(t, n)
	got := waitPhase(t, ns, "later", v1alpha1.PhaseScheduled)
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionReconciling); c == nil || c.Reason != v1alpha1.ReasonScheduled {
		t.Errorf("Reconciling %+v", c)
	}
	if tw.Received.Len() != 0 {
		t.Error("sent before sendAt")
	}
	got = waitFinished(t, ns, "later", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/sms"); d.FirstAttempt() == nil || d.FirstAttempt().Before(&metav1.Time{Time: at}) {
		t.Errorf("first attempt %v, before sendAt %s", d.FirstAttempt(), at)
	}
	if a := tw.Accepted(); len(a) != 1 || a[0].Time.Add(time.Duration(clk.offset.Load())).Before(at) {
		t.Errorf("twilio accepted %+v, want one after %s", a, at)
	}
}

// expiresAfter ends a delivery that keeps failing transiently as Expired,
// with its attempts and last error; and a deferral reaching past expiry
// expires at once.
func TestExpiry(t *testing.T) {
	ns := namespace(t, "expiry")
	tw := twilioFake(t, ns, func(s *v1alpha1.ChannelProviderSpec) { s.Retry = fastRetry(100) })
	tw.Script.SetRates(fake.Rate{P: 1, Fault: fake.Fault{Status: 503}})
	n := notif(ns, "doomed", v1alpha1.Recipient{Phone: "+14155550205"})
	n.Spec.ExpiresAfter = &metav1.Duration{Duration: 2 * time.Second}
	create(t, n)
	got := waitFinished(t, ns, "doomed", v1alpha1.PhaseExpired)
	d := delivery(t, got, "r0/sms")
	if d.State != v1alpha1.DeliveryExpired || d.Reason != v1alpha1.ReasonExpired || d.Attempts < 2 || d.NextAttemptTime != nil {
		t.Errorf("delivery %+v, want Expired after several attempts", d)
	}
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionStalled); c == nil || c.Reason != v1alpha1.ReasonExpired {
		t.Errorf("Stalled %+v", c)
	}
	if got := tw.Received.Len(); got != int(d.Attempts) {
		t.Errorf("twilio received %d requests, status says %d attempts", got, d.Attempts)
	}

	// Quiet for the next hour, expiring in ten minutes: nothing to wait for.
	loc := time.UTC
	now := clk.Now().In(loc)
	user(t, ns, "erin", v1alpha1.UserPreferenceSpec{Phone: "+14155550206", TimeZone: "UTC",
		QuietHours: &v1alpha1.QuietHours{Start: now.Add(-time.Minute).Format("15:04"), End: now.Add(time.Hour).Format("15:04")}}, nil)
	n = notif(ns, "too-late", v1alpha1.Recipient{User: "erin"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelSMS}
	n.Spec.ExpiresAfter = &metav1.Duration{Duration: 10 * time.Minute}
	create(t, n)
	got = waitFinished(t, ns, "too-late", v1alpha1.PhaseExpired)
	if d := delivery(t, got, "r0/sms"); d.State != v1alpha1.DeliveryExpired || d.Attempts != 0 {
		t.Errorf("delivery %+v, want Expired without an attempt", d)
	}
}

// A second Notification with the same idempotencyKey sends nothing.
func TestDuplicateIdempotencyKey(t *testing.T) {
	ns := namespace(t, "dedup")
	tw := twilioFake(t, ns, nil)
	a := notif(ns, "dup-a", v1alpha1.Recipient{Phone: "+14155550207"})
	a.Spec.IdempotencyKey = "build-1234-failed"
	b := a.DeepCopy()
	b.Name = "dup-b"
	create(t, a)
	create(t, b)
	waitFinished(t, ns, "dup-a", v1alpha1.PhaseSent)
	got := waitFinished(t, ns, "dup-b", v1alpha1.PhaseSuppressed)
	if got.Status.DuplicateOf != "dup-a" || len(got.Status.Deliveries) != 0 {
		t.Errorf("dup-b duplicateOf %q deliveries %s", got.Status.DuplicateOf, deliveriesString(got))
	}
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonDuplicate {
		t.Errorf("Ready %+v", c)
	}
	// A third, after the first finished and left the cache, is a duplicate too.
	c := notif(ns, "dup-c", v1alpha1.Recipient{Phone: "+14155550207"})
	c.Spec.IdempotencyKey = "build-1234-failed"
	create(t, c)
	if got := waitFinished(t, ns, "dup-c", v1alpha1.PhaseSuppressed); got.Status.DuplicateOf != "dup-a" {
		t.Errorf("dup-c duplicateOf %q", got.Status.DuplicateOf)
	}
	if n := tw.Received.Len(); n != 1 {
		t.Errorf("twilio received %d, want 1", n)
	}
	// A retry within the same second as a quick first send: creation times
	// tie and the retry's name sorts first, yet the one already started is
	// the original. A few tries, for one to fall within a second.
	for try := range 5 {
		key := fmt.Sprintf("build-%d-tie", try)
		z := notif(ns, fmt.Sprintf("z-first-%d", try), v1alpha1.Recipient{Phone: "+14155550207"})
		z.Spec.IdempotencyKey = key
		create(t, z)
		first := waitFinished(t, ns, z.Name, v1alpha1.PhaseSent)
		retry := notif(ns, fmt.Sprintf("a-retry-%d", try), v1alpha1.Recipient{Phone: "+14155550207"})
		retry.Spec.IdempotencyKey = key
		create(t, retry)
		got := waitFinished(t, ns, retry.Name, v1alpha1.PhaseSuppressed)
		if got.Status.DuplicateOf != z.Name {
			t.Errorf("%s duplicateOf %q, want %s", retry.Name, got.Status.DuplicateOf, z.Name)
		}
		if got.CreationTimestamp.Equal(&first.CreationTimestamp) {
			return // the tie was tried
		}
	}
	t.Log("no retry fell within its original's creation second in 5 tries; the tie was not exercised")
}

// A device the push service declared unregistered is recorded on the
// user's status and skipped by later Notifications.
func TestDeadDeviceLearnedThenSkipped(t *testing.T) {
	ns := namespace(t, "dead-device")
	fc := fcmFake(t, ns, nil)
	dead, alive := fcmToken("gone"), fcmToken("here")
	fc.Unregister(dead)
	user(t, ns, "frank", v1alpha1.UserPreferenceSpec{Devices: []v1alpha1.Device{
		{Platform: v1alpha1.PlatformAndroid, Token: dead}, {Platform: v1alpha1.PlatformAndroid, Token: alive}}}, nil)
	n := notif(ns, "first", v1alpha1.Recipient{User: "frank"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelPush}
	create(t, n)
	got := waitFinished(t, ns, "first", v1alpha1.PhasePartiallySent)
	if d := delivery(t, got, "r0/push/0"); d.State != v1alpha1.DeliveryFailed || d.Reason != v1alpha1.ReasonDeviceUnregistered {
		t.Errorf("dead device %+v", d)
	}
	eventually(t, func() error {
		var u v1alpha1.UserPreference
		if err := env.Client.Get(ctxT(), key(ns, "frank"), &u); err != nil {
			return err
		}
		if len(u.Status.DeadDevices) != 1 || u.Status.DeadDevices[0].TokenHash != policy.HashToken(dead) || u.Status.DeadDevices[0].Reason != v1alpha1.ReasonDeviceUnregistered {
			return fmt.Errorf("dead devices %+v", u.Status.DeadDevices)
		}
		return nil
	})

	n = notif(ns, "second", v1alpha1.Recipient{User: "frank"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelPush}
	create(t, n)
	got = waitFinished(t, ns, "second", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/push/0"); d.State != v1alpha1.DeliverySuppressed || d.Reason != v1alpha1.ReasonDeviceUnregistered || d.Attempts != 0 {
		t.Errorf("dead device on the second Notification %+v, want Suppressed DeviceUnregistered", d)
	}
	sends := map[string]int{}
	for _, r := range fc.Received.All() {
		if r.Status == http.StatusOK || r.Code == "UNREGISTERED" {
			sends[r.Token]++
		}
	}
	if sends[dead] != 1 || sends[alive] != 2 {
		t.Errorf("fcm received %v, want the dead token once and the live one twice", sends)
	}
	noFullAddress(t, got, dead, alive)
}
