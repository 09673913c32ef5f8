package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	fakefcm "github.com/herald-dev/herald/senders/fake/fcm"
	fakesendgrid "github.com/herald-dev/herald/senders/fake/sendgrid"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
	"github.com/herald-dev/herald/senders/fcm"
	"github.com/herald-dev/herald/senders/sendgrid"
	"github.com/herald-dev/herald/senders/twilio"
)

type corev1Namespace struct{ corev1.Namespace }

func (n *corev1Namespace) obj() *corev1.Namespace { return &n.Namespace }

func jsonParams(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func ctxT() context.Context { return context.Background() }

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(ctxT(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// fastRetry keeps retries of transient errors in the test's time scale.
func fastRetry(maxAttempts int32) *v1alpha1.RetryPolicy {
	return &v1alpha1.RetryPolicy{MaxAttempts: maxAttempts,
		InitialBackoff: &metav1.Duration{Duration: 100 * time.Millisecond},
		MaxBackoff:     &metav1.Duration{Duration: 400 * time.Millisecond}}
}

// provider creates a ChannelProvider (and its Secret, when data is not nil)
// and waits for it to be Ready.
func provider(t *testing.T, ns, name string, spec v1alpha1.ChannelProviderSpec, data map[string][]byte) *v1alpha1.ChannelProvider {
	t.Helper()
	if data != nil {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data})
		spec.SecretRef = &v1alpha1.LocalObjectReference{Name: name}
	}
	if spec.Retry == nil {
		spec.Retry = fastRetry(5)
	}
	if spec.Timeout == nil {
		spec.Timeout = &metav1.Duration{Duration: 2 * time.Second}
	}
	p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	create(t, p)
	waitCondition(t, p, func() []metav1.Condition { return p.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	return p
}

// Loopback fakes with a default provider for their channel pointing at them.

func twilioFake(t *testing.T, ns string, mod func(*v1alpha1.ChannelProviderSpec)) *faketwilio.Server {
	t.Helper()
	srv, err := faketwilio.New(faketwilio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, Default: true, Endpoint: srv.URL(),
		Twilio: &v1alpha1.TwilioConfig{From: "+14155550199"}}
	if mod != nil {
		mod(&spec)
	}
	provider(t, ns, "twilio", spec, map[string][]byte{twilio.KeyAccountSID: []byte(srv.AccountSID()), twilio.KeyAuthToken: []byte(srv.AuthToken())})
	return srv
}

func sendgridFake(t *testing.T, ns string, mod func(*v1alpha1.ChannelProviderSpec)) *fakesendgrid.Server {
	t.Helper()
	srv, err := fakesendgrid.New(fakesendgrid.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSendGrid, Default: true, Endpoint: srv.URL(),
		SendGrid: &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "herald@example.com", Name: "Herald"}}}
	if mod != nil {
		mod(&spec)
	}
	provider(t, ns, "sendgrid", spec, map[string][]byte{sendgrid.KeyAPIKey: []byte(srv.APIKey())})
	return srv
}

// webhookFake creates a webhook provider named name; default for the
// channel when def.
func webhookFake(t *testing.T, ns, name string, def bool, mod func(*v1alpha1.ChannelProviderSpec)) *fakewebhook.Server {
	t.Helper()
	srv, err := fakewebhook.New(fakewebhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Default: def,
		Webhook: &v1alpha1.WebhookConfig{URL: srv.URL() + "/hooks/" + name, Format: "json"}}
	if mod != nil {
		mod(&spec)
	}
	provider(t, ns, name, spec, nil)
	return srv
}

const fcmProject = "herald-test"

func fcmFake(t *testing.T, ns string, mod func(*v1alpha1.ChannelProviderSpec)) *fakefcm.Server {
	t.Helper()
	srv, err := fakefcm.New(fakefcm.Options{ProjectID: fcmProject})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	creds, err := srv.NewCredentials("herald@" + fcmProject + ".iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, Default: true, Endpoint: srv.URL(),
		FCM: &v1alpha1.FCMConfig{ProjectID: fcmProject}}
	if mod != nil {
		mod(&spec)
	}
	provider(t, ns, "fcm", spec, map[string][]byte{fcm.KeyCredentials: creds})
	return srv
}

// fcmToken is a well-formed registration token, distinct per n.
func fcmToken(n string) string { return "tok" + n + ":" + strings.Repeat("APA91bH-x_", 5) }

func user(t *testing.T, ns, name string, spec v1alpha1.UserPreferenceSpec, labels map[string]string) *v1alpha1.UserPreference {
	t.Helper()
	u := &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: spec}
	create(t, u)
	return u
}

// notif builds a Notification with inline content for every channel.
func notif(ns, name string, rcpts ...v1alpha1.Recipient) *v1alpha1.Notification {
	return &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content: &v1alpha1.ChannelContent{
				Email:   &v1alpha1.EmailContent{Subject: "Build {{ .Params.build }}", Text: "Build {{ .Params.build }} failed"},
				SMS:     &v1alpha1.SMSContent{Text: "Build {{ .Params.build }} failed"},
				Push:    &v1alpha1.PushContent{Title: "Build", Body: "Build {{ .Params.build }} failed"},
				Webhook: &v1alpha1.WebhookContent{Text: "Build {{ .Params.build }} failed"},
			},
			Params:     jsonParams(`{"build": "1234"}`),
			Recipients: rcpts,
		},
	}
}

func getNotif(t *testing.T, ns, name string) *v1alpha1.Notification {
	t.Helper()
	n := &v1alpha1.Notification{}
	if err := env.Client.Get(ctxT(), key(ns, name), n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFinished waits for the Notification to finish and returns it as stored.
func waitFinished(t *testing.T, ns, name string, phase v1alpha1.NotificationPhase) *v1alpha1.Notification {
	t.Helper()
	n := &v1alpha1.Notification{}
	eventually(t, func() error {
		if err := env.Client.Get(ctxT(), key(ns, name), n); err != nil {
			return err
		}
		if n.Status.Phase != phase {
			return fmt.Errorf("phase %q (%+v), want finished %s; deliveries %s", n.Status.Phase, n.Status.Conditions, phase, deliveriesString(n))
		}
		return nil
	})
	return n
}

func deliveriesString(n *v1alpha1.Notification) string {
	var b strings.Builder
	for i, d := range n.Status.Deliveries {
		if i == 5 {
			fmt.Fprintf(&b, " ... (%d)", len(n.Status.Deliveries))
			break
		}
		fmt.Fprintf(&b, "[%s %s %s %s/%s a=%d %q] ", d.ID, d.Channel, d.Address, d.State, d.Reason, d.Attempts, d.Message)
	}
	return b.String()
}

// delivery returns the delivery with the id, failing the test if there is none.
func delivery(t *testing.T, n *v1alpha1.Notification, id string) v1alpha1.Delivery {
	t.Helper()
	for _, d := range n.Status.Deliveries {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no delivery %s in %s", id, deliveriesString(n))
	return v1alpha1.Delivery{}
}

// events lists the Events about obj.
func events(t *testing.T, obj client.Object) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(ctxT(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == obj.GetUID() {
			out = append(out, e)
		}
	}
	return out
}

// statusWatch records the distinct statuses a Notification was stored with,
// from a watch on the API server: each is one status write.
type statusWatch struct {
	w    watch.Interface
	done chan struct{}
	// writes counts the updates that changed status; meta those that did not.
	writes, meta int
}

func watchStatus(t *testing.T, ns, name string) *statusWatch {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctxT(), &v1alpha1.NotificationList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
	if err != nil {
		t.Fatal(err)
	}
	s := &statusWatch{w: w, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var last *v1alpha1.NotificationStatus
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*v1alpha1.Notification)
			if !ok {
				continue
			}
			switch ev.Type {
			case watch.Added:
				last = n.Status.DeepCopy()
			case watch.Modified:
				if last == nil || !statusEqual(*last, n.Status) {
					s.writes++
				} else {
					s.meta++
				}
				last = n.Status.DeepCopy()
			}
		}
	}()
	return s
}

func statusEqual(a, b v1alpha1.NotificationStatus) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// stop ends the watch and returns the counts.
func (s *statusWatch) stop() (writes, meta int) {
	s.w.Stop()
	<-s.done
	return s.writes, s.meta
}

// noFullAddress fails the test if any condition message or Event of the
// Notification quotes one of the raw addresses.
func noFullAddress(t *testing.T, n *v1alpha1.Notification, raw ...string) {
	t.Helper()
	var texts []string
	for _, c := range n.Status.Conditions {
		texts = append(texts, c.Message)
	}
	for _, d := range n.Status.Deliveries {
		texts = append(texts, d.Message, d.Address, d.Recipient)
	}
	for _, e := range events(t, n) {
		texts = append(texts, e.Note)
	}
	for _, text := range texts {
		for _, a := range raw {
			if strings.Contains(text, a) {
				t.Errorf("%q quotes the address %q", text, a)
			}
		}
	}
}
