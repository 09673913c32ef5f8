package controller_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/senders/fake"
)

func templated(ns, name, tmpl string, rcpts ...v1alpha1.Recipient) *v1alpha1.Notification {
	n := notif(ns, name, rcpts...)
	n.Spec.Content = nil
	n.Spec.TemplateRef = &v1alpha1.LocalObjectReference{Name: tmpl}
	return n
}

// A Notification naming a Template that does not exist yet waits for it,
// and goes out when it appears.
func TestMissingTemplateThenCreated(t *testing.T) {
	ns := namespace(t, "template-later")
	tw := twilioFake(t, ns, nil)
	n := templated(ns, "greet", "welcome", v1alpha1.Recipient{Phone: "+14155550301"})
	create(t, n)
	msg := waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTemplateNotFound)
	if !strings.Contains(msg, `"welcome"`) || n.Status.Phase != v1alpha1.PhasePending {
		t.Errorf("phase %s, message %q", n.Status.Phase, msg)
	}
	if c := findCond(n.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("Stalled %+v: a missing Template may appear by itself", c)
	}
	create(t, &v1alpha1.Template{ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns},
		Spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "Welcome, build {{ .Params.build }}"}}}})
	waitFinished(t, ns, "greet", v1alpha1.PhaseSent)
	if a := tw.Accepted(); len(a) != 1 || a[0].Body != "Welcome, build 1234" {
		t.Errorf("twilio accepted %+v", a)
	}
}

// Missing requiredParams and a body that does not render stall the
// Notification with the error; editing its params unblocks it.
func TestRenderErrorStalledThenFixed(t *testing.T) {
	ns := namespace(t, "render-error")
	tw := twilioFake(t, ns, nil)
	create(t, &v1alpha1.Template{ObjectMeta: metav1.ObjectMeta{Name: "receipt", Namespace: ns},
		Spec: v1alpha1.TemplateSpec{RequiredParams: []string{"order"},
			Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "Order {{ .Params.order }}: {{ .Params.total }}"}}}})
	n := templated(ns, "receipt", "receipt", v1alpha1.Recipient{Phone: "+14155550302"})
	n.Spec.Params = jsonParams(`{"build": "1"}`)
	create(t, n)
	msg := waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonMissingParams)
	if !strings.Contains(msg, "order") {
		t.Errorf("MissingParams message %q does not name the param", msg)
	}

	setParams := func(p string) {
		t.Helper()
		eventually(t, func() error {
			cur := getNotif(t, ns, "receipt")
			cur.Spec.Params = jsonParams(p)
			return env.Client.Update(ctxT(), cur)
		})
	}
	setParams(`{"order": "A-1"}`)
	msg = waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonRenderError)
	if !strings.Contains(msg, "total") {
		t.Errorf("RenderError message %q does not name the missing key", msg)
	}
	if tw.Received.Len() != 0 {
		t.Error("sent while stalled")
	}

	setParams(`{"order": "A-1", "total": "5 EUR"}`)
	got := waitFinished(t, ns, "receipt", v1alpha1.PhaseSent)
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("still Stalled: %+v", c)
	}
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
	}
	if a := tw.Accepted(); len(a) != 1 || a[0].Body != "Order A-1: 5 EUR" {
		t.Errorf("twilio accepted %+v", a)
	}
}

// ttlSecondsAfterFinished deletes a finished Notification on time; 0 at once.
func TestTTLDeletion(t *testing.T) {
	ns := namespace(t, "ttl")
	logProviders(t, ns)
	for _, ttl := range []int32{1, 0} {
		name := fmt.Sprintf("ttl-%d", ttl)
		n := notif(ns, name, v1alpha1.Recipient{Email: "ttl@example.com"})
		n.Spec.TTLSecondsAfterFinished = ptr.To(ttl)
		create(t, n)
		start := time.Now()
		eventually(t, func() error {
			err := env.Client.Get(ctxT(), key(ns, name), &v1alpha1.Notification{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("%s still there: %v", name, err)
		})
		t.Logf("%s deleted %s after creation", name, time.Since(start))
	}
}

// A Notification finished by one manager is deleted on its TTL by the next:
// the new sweeper finds it by the phase (a selectable field), since the
// schedule kept in memory went with the old process.
func TestTTLAcrossRestart(t *testing.T) {
	ns := namespace(t, "ttl-restart")
	logProviders(t, ns)
	n := notif(ns, "later", v1alpha1.Recipient{Email: "ttl@example.com"})
	n.Spec.TTLSecondsAfterFinished = ptr.To[int32](4)
	create(t, n)
	waitFinished(t, ns, "later", v1alpha1.PhaseSent)
	restartManagerWith(t, nil)
	eventually(t, func() error {
		err := env.Client.Get(ctxT(), key(ns, "later"), &v1alpha1.Notification{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there after the restart: %v", err)
	})
}

// manyUsers creates count users labelled group in ns, in parallel.
func manyUsers(t *testing.T, ns, group string, count int, spec func(i int) v1alpha1.UserPreferenceSpec) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u := &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%05d", group, i), Namespace: ns,
					Labels: map[string]string{"group": group}}, Spec: spec(i)}
				if err := env.Client.Create(ctxT(), u); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The informer cache sees a watch event within milliseconds of its
	// write, long before the Notification that selects these users is
	// created and planned; waiting for each user's Ready (a status write
	// per user, about 45/s on a test API server) would take most of a minute.
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("UserPreferenceList"))
	if err := env.Client.List(ctxT(), &list, client.InNamespace(ns), client.MatchingLabels{"group": group}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != count {
		t.Fatalf("%d users stored, want %d", len(list.Items), count)
	}
}

// children returns the child Notifications of parent.
func children(t *testing.T, parent *v1alpha1.Notification) []v1alpha1.Notification {
	t.Helper()
	var list v1alpha1.NotificationList
	if err := env.Client.List(ctxT(), &list, client.InNamespace(parent.Namespace), client.MatchingLabels{v1alpha1.LabelParent: parent.Name}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// checkChildren checks the split of a fan-out: each child owned by the
// parent, within the bound, and together every recipient exactly once.
func checkChildren(t *testing.T, parent *v1alpha1.Notification, users, perObject int) {
	t.Helper()
	kids := children(t, parent)
	want := (users + perObject - 1) / perObject
	if len(kids) != want || len(parent.Status.Children) != want {
		t.Fatalf("%d children (status names %d), want %d", len(kids), len(parent.Status.Children), want)
	}
	seen := map[string]int{}
	for _, c := range kids {
		if !metav1.IsControlledBy(&c, parent) {
			t.Errorf("child %s not controlled by the parent: %+v", c.Name, c.OwnerReferences)
		}
		if c.Status.Phase != v1alpha1.PhaseSent || len(c.Status.Deliveries) > perObject || c.Status.Summary.Sent != int32(len(c.Status.Deliveries)) {
			t.Errorf("child %s: phase %s, %d deliveries, summary %+v", c.Name, c.Status.Phase, len(c.Status.Deliveries), c.Status.Summary)
		}
		for _, r := range c.Spec.Recipients {
			seen[r.User]++
		}
	}
	if len(seen) != users {
		t.Errorf("children name %d distinct users, want %d", len(seen), users)
	}
	for u, k := range seen {
		if k != 1 {
			t.Errorf("user %s in %d children", u, k)
		}
	}
	if parent.Status.Summary != (v1alpha1.DeliverySummary{Total: int32(users), Sent: int32(users)}) {
		t.Errorf("parent summary %+v, want %d sent", parent.Status.Summary, users)
	}
}

// A selector over 2,000 users is split into children of at most
// MaxDeliveriesPerObject deliveries; the parent adds up their summaries.
func TestSelectorFanOut2000(t *testing.T) {
	const users = 2000
	ns := namespace(t, "fanout")
	logProviders(t, ns)
	start := time.Now()
	manyUsers(t, ns, "all", users, func(i int) v1alpha1.UserPreferenceSpec {
		return v1alpha1.UserPreferenceSpec{Email: fmt.Sprintf("user%d@example.com", i)}
	})
	t.Logf("%d users created and seen in %s", users, time.Since(start))

	n := notif(ns, "everyone")
	n.Spec.RecipientSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"group": "all"}}
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelEmail}
	start = time.Now()
	create(t, n)
	got := waitFinished(t, ns, "everyone", v1alpha1.PhaseSent)
	t.Logf("fan-out to %d users finished in %s", users, time.Since(start))
	if len(got.Status.Deliveries) != 0 {
		t.Errorf("the parent records %d deliveries itself", len(got.Status.Deliveries))
	}
	checkChildren(t, got, users, manager.DefaultOptions().DeliveriesPerObject())
	// Each child finishing wakes the parent; it adds up what this process
	// remembers of its finished children and what the cache holds of the
	// others, so it lists none and reads a child back at most once (one
	// that left the cache before the parent heard it finished).
	perChild := map[string]int{}
	for _, r := range reads.in(ns) {
		perChild[r]++
		if r == ns+" list" || perChild[r] > 1 {
			t.Errorf("the manager read %q from the API server %d times: %v", r, perChild[r], reads.in(ns))
			break
		}
	}
	t.Logf("%d children, %d read back from the API server", len(got.Status.Children), len(perChild))
	ev := waitEvent(t, got, v1alpha1.ReasonAllSent)
	if !strings.Contains(ev.Note, "2000 sent") {
		t.Errorf("event %q", ev.Note)
	}
}

// A manager restarted in the middle of a fan-out serves every recipient:
// what was in flight is sent again (at least once), nothing is lost.
func TestRestartMidFanOut(t *testing.T) {
	const users, perObject = 400, 150
	ns := namespace(t, "restart")
	// Children of 150 deliveries, so the restart lands among several.
	restartManagerWith(t, func(o *manager.Options) { o.MaxDeliveriesPerObject = perObject })
	t.Cleanup(func() { restartManagerWith(t, nil) })
	tw := twilioFake(t, ns, func(s *v1alpha1.ChannelProviderSpec) { s.Concurrency = 2 })
	tw.Script.SetLatency(15 * time.Millisecond)
	manyUsers(t, ns, "crowd", users, func(i int) v1alpha1.UserPreferenceSpec {
		return v1alpha1.UserPreferenceSpec{Phone: fmt.Sprintf("+1415556%04d", i)}
	})
	n := notif(ns, "crowd")
	n.Spec.RecipientSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"group": "crowd"}}
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelSMS}
	create(t, n)
	eventually(t, func() error {
		if k := len(tw.Accepted()); k < users/3 {
			return fmt.Errorf("%d sent", k)
		}
		return nil
	})
	before := len(tw.Accepted())
	restartManagerWith(t, func(o *manager.Options) { o.MaxDeliveriesPerObject = perObject })
	t.Logf("restarted after %d of %d sends", before, users)

	got := waitFinished(t, ns, "crowd", v1alpha1.PhaseSent)
	checkChildren(t, got, users, perObject)
	perPhone := map[string]int{}
	for _, r := range tw.Accepted() {
		perPhone[r.To]++
	}
	dups := 0
	for _, k := range perPhone {
		dups += k - 1
	}
	t.Logf("%d distinct recipients served, %d duplicates across the restart", len(perPhone), dups)
	if len(perPhone) != users {
		t.Errorf("%d distinct recipients served, want %d", len(perPhone), users)
	}
}

// smallFanOut restarts the manager with children of two deliveries (the
// default comes back at cleanup), creates users users with an email address
// in a new namespace, and returns it with a Notification named name, not yet
// created, to all of them by email.
func smallFanOut(t *testing.T, nsPrefix, name string, users int) (string, *v1alpha1.Notification) {
	t.Helper()
	ns := namespace(t, nsPrefix)
	restartManagerWith(t, func(o *manager.Options) { o.MaxDeliveriesPerObject = 2 })
	t.Cleanup(func() { restartManagerWith(t, nil) })
	logProviders(t, ns)
	manyUsers(t, ns, "few", users, func(i int) v1alpha1.UserPreferenceSpec {
		return v1alpha1.UserPreferenceSpec{Email: fmt.Sprintf("few%d@example.com", i)}
	})
	n := notif(ns, name)
	n.Spec.RecipientSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"group": "few"}}
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelEmail}
	return ns, n
}

// Children of a fan-out are not deleted on their own TTL (they go with the
// parent): one deleted before the parent counted it would leave the parent
// waiting for ever. With ttlSecondsAfterFinished 0 the parent finishes and is
// deleted, and the sweeper deletes its children with it (the test API server
// has no garbage collector to follow the owner references).
func TestFanOutChildrenGoWithTheirParent(t *testing.T) {
	ns, n := smallFanOut(t, "fanout-ttl", "few", 7)
	n.Spec.TTLSecondsAfterFinished = ptr.To(int32(0))
	create(t, n)
	eventually(t, func() error {
		err := env.Client.Get(ctxT(), key(ns, "few"), &v1alpha1.Notification{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("parent not deleted: %v", err)
	})
	eventually(t, func() error {
		if kids := children(t, n); len(kids) != 0 {
			return fmt.Errorf("%d children left after their parent was deleted", len(kids))
		}
		return nil
	})
}

// A label selector that admission cannot parse stalls the Notification with
// the field named, instead of failing the reconcile for ever.
func TestInvalidSelectorStalls(t *testing.T) {
	ns := namespace(t, "bad-selector")
	n := notif(ns, "bad")
	n.Spec.RecipientSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"not a label key!": "x"}}
	create(t, n)
	msg := waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(msg, "spec.recipientSelector") {
		t.Errorf("message %q does not name spec.recipientSelector", msg)
	}
}

// delivery: AtMostOnce writes Sending before it sends. A manager that stops
// in the middle of a send (here: a provider that never answers, cut off at
// the end of the drain) leaves the delivery Sending; the next manager
// records it Unknown with reason Interrupted and never sends it again.
func TestAtMostOnceInterrupted(t *testing.T) {
	ns := namespace(t, "at-most-once")
	tw := twilioFake(t, ns, nil)
	ok := notif(ns, "once", v1alpha1.Recipient{Phone: "+14155550111"})
	ok.Spec.Delivery = v1alpha1.AtMostOnce
	create(t, ok)
	if d := delivery(t, waitFinished(t, ns, "once", v1alpha1.PhaseSent), "r0/sms"); d.State != v1alpha1.DeliverySent || d.Attempts != 1 {
		t.Errorf("delivery %+v, want Sent once", d)
	}

	tw.Script.Push(fake.Fault{Latency: time.Minute})
	hung := notif(ns, "hung", v1alpha1.Recipient{Phone: "+14155550112"})
	hung.Spec.Delivery = v1alpha1.AtMostOnce
	create(t, hung)
	eventually(t, func() error {
		n := &v1alpha1.Notification{}
		if err := env.Client.Get(ctxT(), key(ns, "hung"), n); err != nil {
			return err
		}
		if len(n.Status.Deliveries) != 1 || n.Status.Deliveries[0].State != v1alpha1.DeliverySending {
			return fmt.Errorf("deliveries %s, want one Sending", deliveriesString(n))
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // the send itself follows the write
	restartManagerWith(t, nil)
	got := waitFinished(t, ns, "hung", v1alpha1.PhaseFailed)
	d := delivery(t, got, "r0/sms")
	if d.State != v1alpha1.DeliveryUnknown || d.Reason != v1alpha1.ReasonInterrupted {
		t.Errorf("delivery %+v, want Unknown Interrupted", d)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(tw.Received.All()); n != 2 {
		t.Errorf("twilio received %d requests, want 2 (one each; the interrupted one never again)", n)
	}
}

// Nothing waits for ever: a Notification whose Template never appears, and
// one whose channel has no provider, fail with that reason after
// --max-pending. Finished turns True with them, so `kubectl wait
// --for=condition=Finished` returns on failure as it does on success.
func TestStuckNotificationsFail(t *testing.T) {
	restartManagerWith(t, func(o *manager.Options) { o.MaxPending = 3 * time.Second })
	t.Cleanup(func() { restartManagerWith(t, nil) })
	ns := namespace(t, "stuck")
	missing := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: "no-template", Namespace: ns},
		Spec: v1alpha1.NotificationSpec{TemplateRef: &v1alpha1.LocalObjectReference{Name: "never"},
			Recipients: []v1alpha1.Recipient{{Email: "a@example.com"}}},
	}
	create(t, missing)
	create(t, notif(ns, "no-provider", v1alpha1.Recipient{Phone: "+14155550113"}))

	pending := waitCondition(t, missing, func() []metav1.Condition { return missing.Status.Conditions }, v1alpha1.ConditionFinished, metav1.ConditionFalse, v1alpha1.ReasonTemplateNotFound)
	t.Logf("while waiting: %s", pending)
	for name, reason := range map[string]string{"no-template": v1alpha1.ReasonTemplateNotFound, "no-provider": v1alpha1.ReasonAllFailed} {
		got := waitFinished(t, ns, name, v1alpha1.PhaseFailed)
		c := findCond(got.Status.Conditions, v1alpha1.ConditionFinished)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			t.Errorf("%s: Finished %+v, want True %s", name, c, reason)
		}
		if got.Status.CompletionTime == nil || got.Status.CompletionTime.Sub(got.CreationTimestamp.Time) > time.Minute {
			t.Errorf("%s: completed at %v, created %v", name, got.Status.CompletionTime, got.CreationTimestamp)
		}
	}
	got := waitFinished(t, ns, "no-provider", v1alpha1.PhaseFailed)
	if d := delivery(t, got, "r0/sms"); d.State != v1alpha1.DeliveryFailed || d.Reason != v1alpha1.ReasonProviderNotReady {
		t.Errorf("delivery %+v, want Failed ProviderNotReady", d)
	}
}

// What admission cannot check (the same recipient twice, sendAt more than
// a year ahead, params over 64 KiB) fails the Notification at once with
// InvalidSpec naming the field, and a Warning Event; nothing is sent.
func TestInvalidSpecFails(t *testing.T) {
	ns := namespace(t, "invalid-spec")
	tw := twilioFake(t, ns, nil)
	twice := notif(ns, "twice", v1alpha1.Recipient{Phone: "+14155550114"}, v1alpha1.Recipient{Phone: "+14155550114"})
	create(t, twice)
	later := notif(ns, "later", v1alpha1.Recipient{Phone: "+14155550115"})
	far := metav1.NewTime(time.Now().Add(400 * 24 * time.Hour))
	later.Spec.SendAt = &far
	create(t, later)
	for name, field := range map[string]string{"twice": "spec.recipients[1]", "later": "spec.sendAt"} {
		got := waitFinished(t, ns, name, v1alpha1.PhaseFailed)
		c := findCond(got.Status.Conditions, v1alpha1.ConditionStalled)
		if c == nil || c.Reason != v1alpha1.ReasonInvalidSpec || !strings.HasPrefix(c.Message, field) {
			t.Errorf("%s: Stalled %+v, want InvalidSpec naming %s", name, c, field)
		}
		waitEvent(t, got, v1alpha1.ReasonInvalidSpec)
	}
	if n := len(tw.Received.All()); n != 0 {
		t.Errorf("twilio received %d requests, want none", n)
	}
}

// A Notification that happens to hold a child's name, even with the parent
// label, is not that child: the fan-out stalls saying so rather than count
// someone else's object, and the other children are the parent's.
func TestFanOutChildNameTaken(t *testing.T) {
	ns, n := smallFanOut(t, "fanout-taken", "taken", 5)
	squatter := notif(ns, "taken-1", v1alpha1.Recipient{Email: "squatter@example.com"})
	squatter.Labels = map[string]string{v1alpha1.LabelParent: "taken"}
	create(t, squatter)
	create(t, n)
	msg := waitCondition(t, n, func() []metav1.Condition { return n.Status.Conditions }, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(msg, "taken-1") || !strings.Contains(msg, "does not control") {
		t.Errorf("stalled message %q does not name the taken child", msg)
	}
	if n.Status.Phase.Finished() || len(n.Status.Children) != 0 {
		t.Errorf("parent %s with children %v, want pending with none", n.Status.Phase, n.Status.Children)
	}
	for _, c := range children(t, n) {
		if c.Name == "taken-1" {
			if metav1.IsControlledBy(&c, n) {
				t.Errorf("the squatter became a child")
			}
			continue
		}
		if !metav1.IsControlledBy(&c, n) {
			t.Errorf("child %s not controlled by the parent", c.Name)
		}
	}
}
