package deploy

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/senders/fake"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
	"github.com/herald-dev/herald/senders/twilio"
)

// The manager runs the whole pipeline (send, learn an unsubscribed phone
// onto a UserPreference, record Events, delete a finished Notification on
// its TTL, hold the leader Lease) as its own ServiceAccount with exactly
// the RBAC config/default renders, by impersonation against a real API
// server: a verb the generated role lacks fails this test, not a cluster.
func TestManagerRunsUnderItsOwnRole(t *testing.T) {
	objs, env := renderDefault(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := env.Client

	// The namespace, ServiceAccount and RBAC objects, for real.
	const ns = "herald-system"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	sa := ""
	for _, u := range objs {
		switch u.GetKind() {
		case "ServiceAccount":
			sa = u.GetName()
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		default:
			continue
		}
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if sa == "" {
		t.Fatal("config/default renders no ServiceAccount")
	}
	as := rest.CopyConfig(env.Config)
	as.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}

	o := manager.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.Namespace = "0", "0", ns
	o.LeaderElection, o.LeaderElectionNamespace = true, ns
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	o.EgressAllowCIDRs = "127.0.0.0/8" // the Twilio fake
	o.OutboxDir = t.TempDir()
	mgr, err := manager.New(as, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	// A tenant namespace with a Twilio provider (Secret read on demand) and
	// a user whose phone the provider reports unsubscribed.
	srv, err := faketwilio.New(faketwilio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const team = "team"
	must := func(o client.Object) {
		t.Helper()
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	must(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}})
	must(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "twilio", Namespace: team},
		Data: map[string][]byte{twilio.KeyAccountSID: []byte(srv.AccountSID()), twilio.KeyAuthToken: []byte(srv.AuthToken())}})
	must(&v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "twilio", Namespace: team},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, Default: true, Endpoint: srv.URL(),
			SecretRef: &v1alpha1.LocalObjectReference{Name: "twilio"}, Twilio: &v1alpha1.TwilioConfig{From: "+14155550199"}}})
	must(&v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: team},
		Spec: v1alpha1.UserPreferenceSpec{Phone: "+14155550120"}})
	content := &v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "deploy done"}}
	must(&v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: team},
		Spec: v1alpha1.NotificationSpec{Content: content, Recipients: []v1alpha1.Recipient{{Phone: "+14155550121"}}, TTLSecondsAfterFinished: ptr.To[int32](0)}})

	eventually := func(what string, f func() error) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = f(); err == nil {
				return
			}
		}
		t.Fatalf("%s: %v", what, err)
	}
	// Sent, then deleted at once by the sweeper (ttlSecondsAfterFinished 0).
	eventually("the Sent notification deleted on its TTL", func() error {
		err := c.Get(ctx, client.ObjectKey{Namespace: team, Name: "ok"}, &v1alpha1.Notification{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if n := len(srv.Accepted()); n != 1 {
		t.Errorf("twilio accepted %d, want 1", n)
	}

	// Unsubscribed (Twilio 21610): Failed, a Warning Event, and learned.
	srv.Script.Push(fake.Fault{Status: 400, Reason: "21610"})
	must(&v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "stop", Namespace: team},
		Spec: v1alpha1.NotificationSpec{Content: content, Recipients: []v1alpha1.Recipient{{User: "alice"}}}})
	eventually("alice's phone learned unsubscribed", func() error {
		var u v1alpha1.UserPreference
		if err := c.Get(ctx, client.ObjectKey{Namespace: team, Name: "alice"}, &u); err != nil {
			return err
		}
		if len(u.Status.Unsubscribed) != 1 {
			return fmt.Errorf("unsubscribed %+v", u.Status.Unsubscribed)
		}
		return nil
	})
	eventually("a Warning Event for the failed notification", func() error {
		var list corev1.EventList
		if err := c.List(ctx, &list, client.InNamespace(team)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Name == "stop" && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("none among %d Events", len(list.Items))
	})
	var lease unstructured.Unstructured
	lease.SetAPIVersion("coordination.k8s.io/v1")
	lease.SetKind("Lease")
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: manager.LeaderElectionID}, &lease); err != nil {
		t.Errorf("the leader Lease: %v", err)
	}
}
