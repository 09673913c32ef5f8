package controller_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// logProviders creates a default log provider per channel in ns.
func logProviders(t *testing.T, ns string) {
	t.Helper()
	for _, ch := range v1alpha1.AllChannels {
		p := &v1alpha1.ChannelProvider{
			ObjectMeta: metav1.ObjectMeta{Name: "log-" + string(ch), Namespace: ns},
			Spec:       v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Default: true, Log: &v1alpha1.LogConfig{Channel: ch}},
		}
		if err := env.Client.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, p, func() []metav1.Condition { return p.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	}
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1Namespace{}
	ns.Name = name
	if err := env.Client.Create(context.Background(), ns.obj()); err != nil {
		t.Fatal(err)
	}
	return name
}

// waitPhase waits for the Notification's phase and returns it as stored.
func waitPhase(t *testing.T, ns, name string, phase v1alpha1.NotificationPhase) *v1alpha1.Notification {
	t.Helper()
	n := &v1alpha1.Notification{}
	eventually(t, func() error {
		if err := env.Client.Get(context.Background(), key(ns, name), n); err != nil {
			return err
		}
		if n.Status.Phase != phase {
			return fmt.Errorf("phase %q (%+v), want %s", n.Status.Phase, n.Status.Conditions, phase)
		}
		return nil
	})
	return n
}

func TestInlineEmailSent(t *testing.T) {
	ns := namespace(t, "inline-email")
	logProviders(t, ns)
	n := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content:    &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Hi {{ .Params.who }}", Text: "hello"}},
			Params:     jsonParams(`{"who": "you"}`),
			Recipients: []v1alpha1.Recipient{{Email: "someone@example.com"}},
		},
	}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "hello", v1alpha1.PhaseSent)
	if len(got.Status.Deliveries) != 1 {
		t.Fatalf("deliveries %+v", got.Status.Deliveries)
	}
	d := got.Status.Deliveries[0]
	if d.State != v1alpha1.DeliverySent || d.Attempts != 1 || d.SentTime == nil || d.Provider != "ChannelProvider/log-email" || d.Address != "s***@example.com" {
		t.Errorf("delivery %+v", d)
	}
	if c := findCond(got.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v", c)
	}
	if got.Status.Summary != (v1alpha1.DeliverySummary{Total: 1, Sent: 1}) {
		t.Errorf("summary %+v", got.Status.Summary)
	}
	// The phase is what takes a finished Notification out of the
	// manager's cache: the API server selects on it.
	for sel, want := range map[string]int{v1alpha1.FinishedSelector(): 1, v1alpha1.UnfinishedSelector(): 0} {
		var list v1alpha1.NotificationList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: fields.ParseSelectorOrDie(sel)}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != want {
			t.Errorf("%s: %d Notifications, want %d", sel, len(list.Items), want)
		}
	}
}
