package controller_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// One namespace's backlog on a shared ClusterChannelProvider adds little to
// another namespace's single notification: the provider's queue serves the
// namespaces in turn. Here namespace fair-a queues 600 messages on a
// provider limited to 20/s (30 s of backlog); fair-b's one message must be
// Sent within a second.
func TestSharedProviderFairShare(t *testing.T) {
	for _, name := range []string{"fair-a", "fair-b"} {
		ns := &corev1Namespace{}
		ns.Name = name
		obj := ns.obj()
		obj.SetLabels(map[string]string{"herald-fair": "yes"})
		create(t, obj)
	}
	p := &v1alpha1.ClusterChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "fair-log"},
		Spec: v1alpha1.ClusterChannelProviderSpec{
			ChannelProviderSpec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelEmail},
				RateLimit: &v1alpha1.RateLimit{PerSecond: 20, Burst: 1}, Concurrency: 1},
			AllowedNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"herald-fair": "yes"}}}}
	create(t, p)
	t.Cleanup(func() { _ = env.Client.Delete(ctxT(), p) }) // its queue goes, the backlog with it
	waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	via := &v1alpha1.ProviderOverrides{Email: &v1alpha1.ProviderRoute{ProviderReference: v1alpha1.ProviderReference{Kind: "ClusterChannelProvider", Name: "fair-log"}}}
	email := &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", Text: "t"}}

	manyUsers(t, "fair-a", "flood", 600, func(i int) v1alpha1.UserPreferenceSpec {
		return v1alpha1.UserPreferenceSpec{Email: "flood@example.com"}
	})
	flood := &v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "flood", Namespace: "fair-a"},
		Spec: v1alpha1.NotificationSpec{Content: email, Providers: via,
			RecipientSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "flood"}}}}
	create(t, flood)
	t.Cleanup(func() { _ = env.Client.DeleteAllOf(ctxT(), &v1alpha1.Notification{}, client.InNamespace("fair-a")) })
	// Let the fan-out be planned and its messages queue up.
	eventually(t, func() error {
		n := &v1alpha1.Notification{}
		if err := env.Client.Get(ctxT(), key("fair-a", "flood"), n); err != nil {
			return err
		}
		if n.Status.Summary.Sent < 20 {
			return errf("%d sent so far", n.Status.Summary.Sent)
		}
		return nil
	})

	one := &v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: "fair-b"},
		Spec: v1alpha1.NotificationSpec{Content: email, Providers: via, Recipients: []v1alpha1.Recipient{{Email: "b@example.com"}}}}
	start := time.Now()
	create(t, one)
	waitFinished(t, "fair-b", "one", v1alpha1.PhaseSent)
	took := time.Since(start)
	n := &v1alpha1.Notification{}
	if err := env.Client.Get(ctxT(), key("fair-a", "flood"), n); err != nil {
		t.Fatal(err)
	}
	t.Logf("fair-b's notification Sent %s after its create, with fair-a's %d of %d still pending", took, n.Status.Summary.Pending, n.Status.Summary.Total)
	if took > time.Second {
		t.Errorf("fair-b waited %s behind fair-a's backlog, want at most 1s", took)
	}
	if n.Status.Summary.Pending < 100 {
		t.Errorf("fair-a had only %d pending: no backlog to be fair about", n.Status.Summary.Pending)
	}
}
