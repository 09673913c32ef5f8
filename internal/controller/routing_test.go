package controller_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders/fake"
	fakeapns "github.com/herald-dev/herald/senders/fake/apns"
)

// apnsFake creates a default APNs provider (ios) pointing at a loopback fake.
func apnsFake(t *testing.T, ns string) *fakeapns.Server {
	t.Helper()
	srv, err := fakeapns.New(fakeapns.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	p8, err := srv.NewKey("HERALDTEAM", "HERALDKEY1")
	if err != nil {
		t.Fatal(err)
	}
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderAPNs, Default: true, Endpoint: srv.URL(),
		APNs: &v1alpha1.APNsConfig{TeamID: "HERALDTEAM", KeyID: "HERALDKEY1", Topic: "dev.herald.test", Environment: "development"},
		TLS:  &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: "apns", Key: "ca.crt"}}}
	provider(t, ns, "apns", spec, map[string][]byte{"key.p8": p8, "ca.crt": srv.CAPEM()})
	return srv
}

// A user with an iPhone and an Android phone is reached by one
// Notification: the APNs default takes the iOS device, the FCM default the
// Android one; both defaults are Ready (they serve different platforms).
func TestPushPlatformRouting(t *testing.T) {
	ns := namespace(t, "platforms")
	apns := apnsFake(t, ns)
	fcm := fcmFake(t, ns, nil)
	iosToken := strings.Repeat("ab", 32)
	user(t, ns, "alice", v1alpha1.UserPreferenceSpec{Devices: []v1alpha1.Device{
		{Platform: v1alpha1.PlatformIOS, Token: iosToken, Name: "iPhone"},
		{Platform: v1alpha1.PlatformAndroid, Token: fcmToken("alice"), Name: "Pixel"},
	}}, nil)
	n := notif(ns, "two-phones", v1alpha1.Recipient{User: "alice"})
	n.Spec.Content = &v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Title: "Build", Body: "1234 failed"}}
	create(t, n)
	got := waitFinished(t, ns, "two-phones", v1alpha1.PhaseSent)
	providers := map[string]bool{}
	for _, d := range got.Status.Deliveries {
		providers[d.Provider] = true
	}
	if !providers["ChannelProvider/apns"] || !providers["ChannelProvider/fcm"] || len(got.Status.Deliveries) != 2 {
		t.Errorf("deliveries %s, want one through apns and one through fcm", deliveriesString(got))
	}
	if a, f := apns.Received.Len(), fcm.Received.Len(); a != 1 || f != 1 {
		t.Errorf("apns received %d, fcm %d; want 1 each", a, f)
	}
	if r := apns.Received.All(); len(r) == 1 && r[0].Token != iosToken {
		t.Errorf("apns got token %s…, want the iPhone's", r[0].Token[:8])
	}

	// A second default serving ios competes with the APNs one.
	second := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "fcm-ios", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, Default: true, Platforms: []v1alpha1.Platform{v1alpha1.PlatformIOS},
			SecretRef: &v1alpha1.LocalObjectReference{Name: "fcm"}, FCM: &v1alpha1.FCMConfig{ProjectID: fcmProject}}}
	create(t, second)
	msg := waitCondition(t, second, providerConds(second), v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDuplicateDefault)
	if !strings.Contains(msg, `"apns"`) || !strings.Contains(msg, "ios") {
		t.Errorf("DuplicateDefault message %q should name apns and the platform", msg)
	}
}

// platforms is for push providers, and APNs serves iOS alone.
func TestPlatformsAdmission(t *testing.T) {
	ns := namespace(t, "platforms-admission")
	for _, tc := range []struct {
		spec v1alpha1.ChannelProviderSpec
		want string
	}{
		{v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderAPNs, Platforms: []v1alpha1.Platform{v1alpha1.PlatformAndroid},
			SecretRef: &v1alpha1.LocalObjectReference{Name: "x"}, APNs: &v1alpha1.APNsConfig{Topic: "t"}}, "apns provider serves ios devices only"},
		{v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, Platforms: []v1alpha1.Platform{v1alpha1.PlatformIOS},
			SecretRef: &v1alpha1.LocalObjectReference{Name: "x"}, Twilio: &v1alpha1.TwilioConfig{From: "+14155550100"}}, "platforms is for push providers"},
		{v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, Platforms: []v1alpha1.Platform{"blackberry"},
			SecretRef: &v1alpha1.LocalObjectReference{Name: "x"}, FCM: &v1alpha1.FCMConfig{ProjectID: "p"}}, "spec.platforms[0]"},
	} {
		err := env.Client.Create(ctxT(), &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-", Namespace: ns}, Spec: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with platforms %v: %v, want a refusal saying %q", tc.spec.Type, tc.spec.Platforms, err, tc.want)
		}
	}
}

// A provider that fails for good hands its deliveries to its fallback,
// each delivery recording both; a refused address never fails over.
func TestProviderFailover(t *testing.T) {
	ns := namespace(t, "failover")
	backup := webhookFake(t, ns, "chat-b", false, nil)
	primary := webhookFake(t, ns, "chat", false, func(s *v1alpha1.ChannelProviderSpec) {
		s.Retry = fastRetry(2)
		s.Fallback = []v1alpha1.ProviderReference{{Name: "chat-b"}}
	})
	primary.Script.SetRates(fake.Rate{P: 1, Fault: fake.Fault{Status: 503}})
	n := notif(ns, "outage", v1alpha1.Recipient{Webhook: "chat"})
	n.Spec.Content = &v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: "deploy failed"}}
	create(t, n)
	got := waitFinished(t, ns, "outage", v1alpha1.PhaseSent)
	d := delivery(t, got, "r0/webhook")
	if d.Provider != "ChannelProvider/chat-b" || len(d.TriedProviders) != 1 || d.TriedProviders[0] != "ChannelProvider/chat" {
		t.Errorf("delivery %+v, want sent by chat-b after chat failed", d)
	}
	if p, b := len(primary.Received.All()), len(backup.Accepted()); p != 2 || b != 1 {
		t.Errorf("primary got %d requests (want its 2 attempts), fallback accepted %d (want 1)", p, b)
	}

	// An address the provider refuses is the address's fault: no failover.
	tw := twilioFake(t, ns, func(s *v1alpha1.ChannelProviderSpec) { s.Fallback = []v1alpha1.ProviderReference{{Name: "log-sms"}} })
	create(t, &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "log-sms", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelSMS}}})
	tw.Script.Push(fake.Fault{Reason: "21211"})
	bad := notif(ns, "bad-number", v1alpha1.Recipient{Phone: "+14155550299"})
	create(t, bad)
	got = waitFinished(t, ns, "bad-number", v1alpha1.PhaseFailed)
	if d := delivery(t, got, "r0/sms"); d.Reason != v1alpha1.ReasonInvalidAddress || d.Provider != "ChannelProvider/twilio" || len(d.TriedProviders) != 0 {
		t.Errorf("delivery %+v, want Failed InvalidAddress at twilio, no failover", d)
	}
}

// spec.fallback [push, sms]: a user whose only device turns out dead gets
// the SMS; a user whose push went through gets no SMS; the Notification is
// Sent (the dead push counts as suppressed: the fallback reached her).
func TestChannelFallback(t *testing.T) {
	ns := namespace(t, "channel-fallback")
	fcm := fcmFake(t, ns, nil)
	tw := twilioFake(t, ns, nil)
	fcm.Unregister(fcmToken("dee"))
	user(t, ns, "dee", v1alpha1.UserPreferenceSpec{Phone: "+14155550301",
		Devices: []v1alpha1.Device{{Platform: v1alpha1.PlatformAndroid, Token: fcmToken("dee")}}}, nil)
	user(t, ns, "eve", v1alpha1.UserPreferenceSpec{Phone: "+14155550302",
		Devices: []v1alpha1.Device{{Platform: v1alpha1.PlatformAndroid, Token: fcmToken("eve")}}}, nil)
	n := notif(ns, "pager", v1alpha1.Recipient{User: "dee"}, v1alpha1.Recipient{User: "eve"})
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelPush, v1alpha1.ChannelSMS}
	n.Spec.Fallback = []v1alpha1.Channel{v1alpha1.ChannelPush, v1alpha1.ChannelSMS}
	create(t, n)
	got := waitFinished(t, ns, "pager", v1alpha1.PhaseSent)
	want := map[string]struct {
		state  v1alpha1.DeliveryState
		reason string
	}{
		"r0/push/0": {v1alpha1.DeliveryFailed, v1alpha1.ReasonDeviceUnregistered},
		"r0/sms":    {v1alpha1.DeliverySent, ""},
		"r1/push/0": {v1alpha1.DeliverySent, ""},
		"r1/sms":    {v1alpha1.DeliverySuppressed, v1alpha1.ReasonFallbackNotNeeded},
	}
	for id, w := range want {
		if d := delivery(t, got, id); d.State != w.state || d.Reason != w.reason {
			t.Errorf("%s: %s %s, want %s %s", id, d.State, d.Reason, w.state, w.reason)
		}
	}
	if r := tw.Received.All(); len(r) != 1 {
		t.Errorf("twilio received %d messages, want 1 (dee's fallback)", len(r))
	}
	if s := got.Status.Summary; s.Sent != 2 || s.Failed != 0 || s.Suppressed != 2 {
		t.Errorf("summary %+v, want 2 sent and the dead push counted suppressed", s)
	}
}

// A provider failing twice in a row opens its circuit: Available=False
// with a Warning Event and the circuit metric; while open it is not called
// and its deliveries go straight to its fallback; after the cool-down one
// send probes it and, the provider having recovered, closes the circuit.
func TestCircuitBreaker(t *testing.T) {
	ns := namespace(t, "circuit")
	backup := webhookFake(t, ns, "hook-b", false, nil)
	two := int32(2)
	primary := webhookFake(t, ns, "hook", false, func(s *v1alpha1.ChannelProviderSpec) {
		s.Retry = fastRetry(1)
		s.Fallback = []v1alpha1.ProviderReference{{Name: "hook-b"}}
		s.CircuitBreaker = &v1alpha1.CircuitBreakerPolicy{ConsecutiveFailures: &two, CoolDown: &metav1.Duration{Duration: time.Second}}
	})
	primary.Script.SetRates(fake.Rate{P: 1, Fault: fake.Fault{Status: 503}})
	send := func(name string) v1alpha1.Delivery {
		t.Helper()
		n := notif(ns, name, v1alpha1.Recipient{Webhook: "hook"})
		create(t, n)
		return delivery(t, waitFinished(t, ns, name, v1alpha1.PhaseSent), "r0/webhook")
	}
	for _, name := range []string{"first", "second"} {
		if d := send(name); d.Provider != "ChannelProvider/hook-b" {
			t.Fatalf("%s: sent by %s, want the fallback", name, d.Provider)
		}
	}
	p := &v1alpha1.ChannelProvider{}
	p.Name, p.Namespace = "hook", ns
	msg := waitCondition(t, p, providerConds(p), v1alpha1.ConditionAvailable, metav1.ConditionFalse, v1alpha1.ReasonCircuitOpen)
	if !strings.Contains(msg, "503") {
		t.Errorf("Available message %q should give the last error", msg)
	}
	waitEvent(t, p, v1alpha1.ReasonCircuitOpen)
	if v := circuitMetric(t, "ChannelProvider/"+ns+"/hook"); v != 1 {
		t.Errorf("herald_dispatch_circuit_open = %v, want 1", v)
	}
	if c := findCond(p.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v: an open circuit leaves Ready alone", c)
	}

	// Open: not called, the delivery fails over at once.
	calls := len(primary.Received.All())
	if d := send("third"); d.Provider != "ChannelProvider/hook-b" || len(d.TriedProviders) != 1 {
		t.Errorf("while open: %+v, want failed over to hook-b", d)
	}
	if n := len(primary.Received.All()); n != calls {
		t.Errorf("the open provider was called %d more times", n-calls)
	}

	// Recovered: after the cool-down a send probes it and closes the circuit.
	primary.Script.SetRates()
	time.Sleep(1100 * time.Millisecond)
	if d := send("fourth"); d.Provider != "ChannelProvider/hook" {
		t.Errorf("after recovery: sent by %s, want hook (the probe)", d.Provider)
	}
	waitCondition(t, p, providerConds(p), v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonCircuitClosed)
	if v := circuitMetric(t, "ChannelProvider/"+ns+"/hook"); v != 0 {
		t.Errorf("herald_dispatch_circuit_open = %v after closing, want 0", v)
	}
	if got := len(backup.Accepted()); got != 3 {
		t.Errorf("the fallback accepted %d, want 3", got)
	}
}

// circuitMetric reads herald_dispatch_circuit_open for provider key.
func circuitMetric(t *testing.T, key string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "herald_dispatch_circuit_open" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == key {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no herald_dispatch_circuit_open series for %s", key)
	return 0
}

// A Notification's own fallback list on spec.providers replaces the
// provider's: Twilio (no fallback of its own) fails for good, and the
// delivery goes to the provider the Notification named.
func TestNotificationFallbackList(t *testing.T) {
	ns := namespace(t, "route-fallback")
	tw := twilioFake(t, ns, func(s *v1alpha1.ChannelProviderSpec) { s.Retry = fastRetry(1) })
	tw.Script.SetRates(fake.Rate{P: 1, Fault: fake.Fault{Status: 503}})
	logSMS := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "log-sms", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelSMS}}}
	create(t, logSMS)
	waitCondition(t, logSMS, providerConds(logSMS), v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	n := notif(ns, "named", v1alpha1.Recipient{Phone: "+14155550311"})
	n.Spec.Providers = &v1alpha1.ProviderOverrides{SMS: &v1alpha1.ProviderRoute{
		ProviderReference: v1alpha1.ProviderReference{Name: "twilio"},
		Fallback:          []v1alpha1.ProviderReference{{Name: "log-sms"}}}}
	create(t, n)
	got := waitFinished(t, ns, "named", v1alpha1.PhaseSent)
	if d := delivery(t, got, "r0/sms"); d.Provider != "ChannelProvider/log-sms" || len(d.TriedProviders) != 1 || d.TriedProviders[0] != "ChannelProvider/twilio" {
		t.Errorf("delivery %+v, want sent by log-sms after twilio failed", d)
	}
}
