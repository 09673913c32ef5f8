package controller_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
)

func providerConds(p client.Object) func() []metav1.Condition {
	return func() []metav1.Condition {
		switch p := p.(type) {
		case *v1alpha1.ChannelProvider:
			return p.Status.Conditions
		case *v1alpha1.ClusterChannelProvider:
			return p.Status.Conditions
		}
		return nil
	}
}

func createObj(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func sendgridSpec(secretName string) v1alpha1.ChannelProviderSpec {
	return v1alpha1.ChannelProviderSpec{
		Type:      v1alpha1.ProviderSendGrid,
		SecretRef: &v1alpha1.LocalObjectReference{Name: secretName},
		SendGrid:  &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "noreply@example.com"}},
	}
}

// providerEvents lists the Events about obj.
func providerEvents(t *testing.T, obj client.Object) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
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

// assertNoSecretValue fails if any condition message or Event note about obj
// contains one of the values, or any line of one.
func assertNoSecretValue(t *testing.T, obj client.Object, values ...string) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, c := range providerConds(obj)() {
		texts = append(texts, "condition "+c.Type+": "+c.Message)
	}
	for _, e := range providerEvents(t, obj) {
		texts = append(texts, "event "+e.Reason+": "+e.Note)
	}
	for _, v := range values {
		needles := []string{v}
		for _, line := range strings.Split(v, "\n") {
			if len(line) >= 16 {
				needles = append(needles, line)
			}
		}
		for _, text := range texts {
			for _, n := range needles {
				if strings.Contains(text, n) {
					t.Errorf("%s reveals a Secret value: %q", text, n)
				}
			}
		}
	}
}

func TestProviderLogReady(t *testing.T) {
	ns := namespace(t, "provider-log")
	p := &v1alpha1.ChannelProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: ns},
		Spec:       v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelSMS}},
	}
	createObj(t, p)
	waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if p.Status.ObservedGeneration != p.Generation {
		t.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
	}
	for _, typ := range []string{v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
		if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
			t.Errorf("%s present on a Ready provider: %+v", typ, c)
		}
	}
	if e := waitEvent(t, p, v1alpha1.ReasonSucceeded); e.Type != corev1.EventTypeNormal {
		t.Errorf("event type %s, want Normal", e.Type)
	}
}

func TestProviderSecretNotFoundThenCreated(t *testing.T) {
	ns := namespace(t, "provider-secret-late")
	p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns}, Spec: sendgridSpec("sendgrid-creds")}
	createObj(t, p)
	msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	if !strings.Contains(msg, ns+"/sendgrid-creds") {
		t.Errorf("message %q does not name the Secret", msg)
	}
	// Creating the Secret is all it takes: waiting, not stuck.
	waitCondition(t, p, providerConds(p), v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonSecretNotFound)
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("Stalled on a missing Secret: %+v", c)
	}
	if e := waitEvent(t, p, v1alpha1.ReasonSecretNotFound); e.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", e.Type)
	}
	gen := p.Generation

	const apiKey = "SG.not-a-real-key.but-secret-all-the-same"
	createObj(t, secret(ns, "sendgrid-creds", map[string]string{"apiKey": apiKey}))
	waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if p.Generation != gen {
		t.Errorf("provider was edited: generation %d, was %d", p.Generation, gen)
	}
	waitEvent(t, p, v1alpha1.ReasonSucceeded)
	assertNoSecretValue(t, p, apiKey)
}

func TestProviderInvalidSecrets(t *testing.T) {
	ns := namespace(t, "provider-invalid")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	p8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	const credentials = `{"type": "authorized_user", "client_secret": "hunter2-but-longer-and-secret"}`

	cases := []struct {
		name   string
		spec   v1alpha1.ChannelProviderSpec
		data   map[string]string
		reason string
		want   []string
	}{
		{
			name: "sendgrid without apiKey", spec: sendgridSpec("sg"),
			data:   map[string]string{"apikey": "SG.wrong-case-key-is-still-secret"},
			reason: v1alpha1.ReasonSecretKeyMissing, want: []string{ns + "/sg", `"apiKey"`},
		},
		{
			name: "fcm with a credentials.json that is not a service account key",
			spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, SecretRef: &v1alpha1.LocalObjectReference{Name: "fcm"},
				FCM: &v1alpha1.FCMConfig{ProjectID: "demo-project"}},
			data:   map[string]string{"credentials.json": credentials},
			reason: v1alpha1.ReasonInvalidSecret, want: []string{ns + "/fcm", "credentials.json"},
		},
		{
			name: "apns with a P-384 key.p8",
			spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderAPNs, SecretRef: &v1alpha1.LocalObjectReference{Name: "apns"},
				APNs: &v1alpha1.APNsConfig{TeamID: "ABCDE12345", KeyID: "KEY1234567", Topic: "dev.herald.app"}},
			data:   map[string]string{"key.p8": p8},
			reason: v1alpha1.ReasonInvalidSecret, want: []string{ns + "/apns", "key.p8", "P-256"},
		},
		{
			name: "webhook with a CA that is not PEM",
			spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: "https://hooks.example.com/x"},
				TLS: &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: "private-ca", Key: "ca.crt"}}},
			data:   map[string]string{"ca.crt": "certainly not a certificate"},
			reason: v1alpha1.ReasonInvalidSecret, want: []string{ns + "/private-ca", `"ca.crt"`, "spec.tls.caSecretRef"},
		},
		{
			name: "webhook with a CA Secret without the key",
			spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: "https://hooks.example.com/x"},
				TLS: &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: "other-ca", Key: "ca.crt"}}},
			data:   map[string]string{"tls.crt": "x"},
			reason: v1alpha1.ReasonSecretKeyMissing, want: []string{ns + "/other-ca", `"ca.crt"`, "spec.tls.caSecretRef"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := ""
			if tc.spec.SecretRef != nil {
				name = tc.spec.SecretRef.Name
			} else {
				name = tc.spec.TLS.CASecretRef.Name
			}
			createObj(t, secret(ns, name, tc.data))
			p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns}, Spec: tc.spec}
			createObj(t, p)
			msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionFalse, tc.reason)
			t.Logf("%s: %s", tc.reason, msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
			// A person has to fix the Secret.
			waitCondition(t, p, providerConds(p), v1alpha1.ConditionStalled, metav1.ConditionTrue, tc.reason)
			if e := waitEvent(t, p, tc.reason); e.Type != corev1.EventTypeWarning {
				t.Errorf("event type %s, want Warning", e.Type)
			}
			var values []string
			for _, v := range tc.data {
				values = append(values, v)
			}
			assertNoSecretValue(t, p, values...)
		})
	}
}

// TestProviderSecretRotation sends through the real pipeline before and
// after the Secret's url changes: the second message reaches the new URL
// with no restart and no edit of the provider.
func TestProviderSecretRotation(t *testing.T) {
	ns := namespace(t, "provider-rotation")
	oldRecv, err := fakewebhook.New(fakewebhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer oldRecv.Close()
	newRecv, err := fakewebhook.New(fakewebhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer newRecv.Close()

	s := secret(ns, "chat-hook", map[string]string{"url": oldRecv.URL() + "/services/T0/B0/old-token"})
	createObj(t, s)
	p := &v1alpha1.ChannelProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "team-chat", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, SecretRef: &v1alpha1.LocalObjectReference{Name: "chat-hook"},
			Webhook: &v1alpha1.WebhookConfig{Format: "slack"}},
	}
	createObj(t, p)
	msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if !strings.Contains(msg, s.ResourceVersion) {
		t.Errorf("Ready message %q does not say which Secret version is in use (%s)", msg, s.ResourceVersion)
	}

	send := func(name string) {
		t.Helper()
		n := &v1alpha1.Notification{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.NotificationSpec{
				Content:    &v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: "deploy " + name}},
				Recipients: []v1alpha1.Recipient{{Webhook: "team-chat"}},
			},
		}
		createObj(t, n)
		waitPhase(t, ns, name, v1alpha1.PhaseSent)
	}
	send("before")
	if got := len(oldRecv.Accepted()); got != 1 {
		t.Fatalf("old receiver got %d requests, want 1", got)
	}

	s.Data["url"] = []byte(newRecv.URL() + "/services/T0/B0/new-token")
	if err := env.Client.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// The Ready message names the Secret version in use: wait for the new one.
	eventually(t, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || !strings.Contains(c.Message, s.ResourceVersion) {
			return fmt.Errorf("provider has not picked up Secret version %s: %+v", s.ResourceVersion, c)
		}
		return nil
	})
	send("after")
	got := newRecv.Accepted()
	if len(got) != 1 || got[0].Path != "/services/T0/B0/new-token" || !strings.Contains(string(got[0].Body), "deploy after") {
		t.Fatalf("new receiver got %+v, want the second message on the new path", got)
	}
	if n := len(oldRecv.Accepted()); n != 1 {
		t.Errorf("old receiver got %d requests after rotation, want still 1", n)
	}
	assertNoSecretValue(t, p, string(s.Data["url"]), oldRecv.URL()+"/services/T0/B0/old-token")
}

func TestClusterProviderSecretFromManagerNamespace(t *testing.T) {
	// The harness runs the manager in "default".
	other := namespace(t, "cluster-provider-elsewhere")
	const apiKey = "SG.cluster-key-that-must-not-leak"
	createObj(t, secret(other, "cluster-sg-creds", map[string]string{"apiKey": apiKey}))
	p := &v1alpha1.ClusterChannelProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-sendgrid"},
		Spec:       v1alpha1.ClusterChannelProviderSpec{ChannelProviderSpec: sendgridSpec("cluster-sg-creds")},
	}
	createObj(t, p)
	msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	if !strings.Contains(msg, "default/cluster-sg-creds") {
		t.Errorf("message %q does not name the Secret in the manager's namespace", msg)
	}
	waitEvent(t, p, v1alpha1.ReasonSecretNotFound)

	createObj(t, secret("default", "cluster-sg-creds", map[string]string{"apiKey": apiKey}))
	msg = waitCondition(t, p, providerConds(p), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if !strings.Contains(msg, "default/cluster-sg-creds") {
		t.Errorf("message %q does not name the Secret used", msg)
	}
	waitEvent(t, p, v1alpha1.ReasonSucceeded)
	assertNoSecretValue(t, p, apiKey)
}

func TestProviderDuplicateDefault(t *testing.T) {
	ns := namespace(t, "provider-dupes")
	logDefault := func(ch v1alpha1.Channel) v1alpha1.ChannelProviderSpec {
		return v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Default: true, Log: &v1alpha1.LogConfig{Channel: ch}}
	}
	first := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "a-first", Namespace: ns}, Spec: logDefault(v1alpha1.ChannelEmail)}
	createObj(t, first)
	waitCondition(t, first, providerConds(first), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	// A default for another channel is no rival.
	push := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "push", Namespace: ns}, Spec: logDefault(v1alpha1.ChannelPush)}
	createObj(t, push)
	second := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "b-second", Namespace: ns}, Spec: logDefault(v1alpha1.ChannelEmail)}
	createObj(t, second)
	msg := waitCondition(t, second, providerConds(second), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDuplicateDefault)
	if !strings.Contains(msg, `"a-first"`) {
		t.Errorf("message %q does not name the winner", msg)
	}
	waitCondition(t, second, providerConds(second), v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonDuplicateDefault)
	if e := waitEvent(t, second, v1alpha1.ReasonDuplicateDefault); e.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", e.Type)
	}
	waitCondition(t, push, providerConds(push), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	waitCondition(t, first, providerConds(first), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	// The winner goes away: the next oldest takes over without being touched.
	if err := env.Client.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, second, providerConds(second), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	// The same among ClusterChannelProviders (they allow no namespace, so
	// they cannot disturb other tests).
	c1 := &v1alpha1.ClusterChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "dup-cluster-a"},
		Spec: v1alpha1.ClusterChannelProviderSpec{ChannelProviderSpec: logDefault(v1alpha1.ChannelSMS)}}
	createObj(t, c1)
	waitCondition(t, c1, providerConds(c1), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	c2 := &v1alpha1.ClusterChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "dup-cluster-b"},
		Spec: v1alpha1.ClusterChannelProviderSpec{ChannelProviderSpec: logDefault(v1alpha1.ChannelSMS)}}
	createObj(t, c2)
	msg = waitCondition(t, c2, providerConds(c2), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDuplicateDefault)
	if !strings.Contains(msg, `"dup-cluster-a"`) {
		t.Errorf("message %q does not name the winner", msg)
	}
	waitEvent(t, c2, v1alpha1.ReasonDuplicateDefault)

	// Making the loser a non-default clears it.
	c2.Spec.Default = false
	if err := env.Client.Update(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c2, providerConds(c2), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
}

// tls.insecureSkipVerify takes effect only where the manager's operator
// allows it (--allow-insecure-skip-verify); otherwise the provider is
// Stalled with InvalidSpec naming the field, and never sends.
func TestInsecureSkipVerifyNeedsTheOperator(t *testing.T) {
	ns := namespace(t, "insecure-tls")
	p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "skip", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: "https://hooks.example.com/x"},
			TLS: &v1alpha1.TLSConfig{InsecureSkipVerify: true}}}
	createObj(t, p)
	msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec)
	if !strings.Contains(msg, "spec.tls.insecureSkipVerify") || !strings.Contains(msg, "--allow-insecure-skip-verify") {
		t.Errorf("message %q does not name the field and the flag", msg)
	}
}
