package twilio_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/fake"
	twiliofake "github.com/herald-dev/herald/senders/fake/twilio"
	"github.com/herald-dev/herald/senders/sendertest"
	"github.com/herald-dev/herald/senders/twilio"
)

const (
	to       = "+14155550100"
	from     = "+14155550199"
	apiKey   = "SK00000000000000000000000000000002"
	apiKeyPw = "secretsecretsecret"
)

func providerConfig(srv *twiliofake.Server) senders.ProviderConfig {
	return senders.ProviderConfig{
		Name: "ChannelProvider/sms",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:     v1alpha1.ProviderTwilio,
			Endpoint: srv.URL(),
			Timeout:  &metav1.Duration{Duration: 2 * time.Second},
			Twilio:   &v1alpha1.TwilioConfig{From: from},
		},
		Secret: map[string][]byte{
			"accountSID": []byte(srv.AccountSID()),
			"authToken":  []byte(srv.AuthToken() + "\n"),
		},
	}
}

func newSender(t *testing.T, pc senders.ProviderConfig) *twilio.Sender {
	return sendertest.Build(t, twilio.ConfigFrom, twilio.New, pc)
}

func startFake(t *testing.T, opts twiliofake.Options) *twiliofake.Server {
	return sendertest.Fake(t, twiliofake.New, opts)
}

func sms(text string) *senders.Message {
	return &senders.Message{ID: "uid-1.0", SMS: &senders.SMS{Text: text}}
}

func TestSendSuccess(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	s := newSender(t, providerConfig(srv))

	res, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("Build 1234 failed"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d requests, want 1", len(got))
	}
	r := got[0]
	if r.AccountSID != srv.AccountSID() || r.AuthUser != srv.AccountSID() {
		t.Errorf("path sid %q, auth user %q", r.AccountSID, r.AuthUser)
	}
	if r.To != to || r.From != from || r.Body != "Build 1234 failed" || r.MessagingServiceSID != "" {
		t.Errorf("form: %+v", r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", ct)
	}
	if !strings.HasPrefix(r.Header.Get("User-Agent"), "twilio-go/") {
		t.Errorf("user agent %q", r.Header.Get("User-Agent"))
	}
	if res.ProviderMessageID != r.SID || !strings.HasPrefix(res.ProviderMessageID, "SM") || len(res.ProviderMessageID) != 34 {
		t.Errorf("ProviderMessageID %q, fake sid %q", res.ProviderMessageID, r.SID)
	}
}

func TestSendMessagingServiceAndAPIKey(t *testing.T) {
	srv := startFake(t, twiliofake.Options{APIKeySID: apiKey, APIKeySecret: apiKeyPw})
	pc := providerConfig(srv)
	pc.Spec.Twilio = &v1alpha1.TwilioConfig{MessagingServiceSID: "MG0123456789abcdef0123456789abcdef"}
	pc.Secret = map[string][]byte{
		"accountSID":   []byte(srv.AccountSID()),
		"apiKeySID":    []byte(apiKey),
		"apiKeySecret": []byte(apiKeyPw),
	}
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{Phone: to}, sms("hi")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := srv.Accepted()[0]
	if r.AuthUser != apiKey || r.AccountSID != srv.AccountSID() {
		t.Errorf("auth user %q, account %q", r.AuthUser, r.AccountSID)
	}
	if r.MessagingServiceSID != "MG0123456789abcdef0123456789abcdef" || r.From != "" {
		t.Errorf("form: %+v", r)
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name       string
		fault      fake.Fault
		permanent  bool
		reason     string
		code       string
		status     int
		retryAfter time.Duration
	}{
		{"invalid number", fake.Fault{Reason: "21211"}, true, senders.ReasonInvalidAddress, "21211", 400, 0},
		{"not mobile", fake.Fault{Reason: "21614"}, true, senders.ReasonInvalidAddress, "21614", 400, 0},
		{"unsubscribed", fake.Fault{Reason: "21610"}, true, senders.ReasonUnsubscribed, "21610", 400, 0},
		{"auth", fake.Fault{Reason: "20003"}, true, senders.ReasonAuthFailed, "20003", 401, 0},
		{"too long", fake.Fault{Reason: "21617"}, true, senders.ReasonPayloadRejected, "21617", 400, 0},
		{"rate limited", fake.Fault{Reason: "20429", RetryAfter: 7 * time.Second}, false, senders.ReasonRateLimited, "20429", 429, 7 * time.Second},
		{"bare 429", fake.Fault{Status: 429}, false, senders.ReasonRateLimited, "429", 429, 0},
		{"region", fake.Fault{Reason: "21408"}, true, senders.ReasonRejected, "21408", 400, 0},
		{"500 json", fake.Fault{Status: 500, Reason: "20500"}, false, senders.ReasonUnavailable, "20500", 500, 0},
		{"502 html", fake.Fault{Status: 502, Body: fake.HTMLError(502)}, false, senders.ReasonUnavailable, "", 502, 0},
		{"503 html retry-after", fake.Fault{Status: 503, Body: fake.HTMLError(503), RetryAfter: 3 * time.Second}, false, senders.ReasonUnavailable, "", 503, 3 * time.Second},
		{"dropped", fake.Fault{Drop: true}, false, senders.ReasonNetwork, "", 0, 0},
	}
	srv := startFake(t, twiliofake.Options{})
	s := newSender(t, providerConfig(srv))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.Script.Push(tc.fault)
			_, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
			var e *senders.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *senders.Error", err)
			}
			if e.Permanent != tc.permanent || e.Reason != tc.reason || e.Code != tc.code || e.StatusCode != tc.status || e.RetryAfter != tc.retryAfter {
				t.Errorf("got %+v", e)
			}
			assertNoSecrets(t, srv, err)
		})
	}
}

func TestFakeValidationMasked(t *testing.T) {
	// The fake, like Twilio, quotes the rejected number; the error must not.
	srv := startFake(t, twiliofake.Options{})
	s := newSender(t, providerConfig(srv))
	// Valid E.164 for our check, but a 21211 from the provider quoting it.
	srv.Script.Push(fake.Fault{Reason: "21211"})
	_, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
	if err == nil || strings.Contains(err.Error(), to) {
		t.Fatalf("error %v", err)
	}
}

func TestSendLocalValidation(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	s := newSender(t, providerConfig(srv))
	_, err := s.Send(context.Background(), senders.Address{Phone: "0415555010"}, sms("hi"))
	if e := senders.AsError(err); e == nil || !e.Permanent || e.Reason != senders.ReasonInvalidAddress {
		t.Errorf("bad number: %v", err)
	}
	if strings.Contains(err.Error(), "0415555010") {
		t.Errorf("unmasked number in %q", err)
	}
	_, err = s.Send(context.Background(), senders.Address{Phone: to}, &senders.Message{ID: "x"})
	if e := senders.AsError(err); e == nil || !e.Permanent || e.Reason != senders.ReasonPayloadRejected {
		t.Errorf("no sms: %v", err)
	}
	if n := srv.Received.Len(); n != 0 {
		t.Errorf("%d requests reached the provider", n)
	}
}

func TestSendWrongToken(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	pc := providerConfig(srv)
	pc.Secret["authToken"] = []byte("wrongwrongwrong")
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
	e := senders.AsError(err)
	if !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.Code != "20003" {
		t.Errorf("got %+v", e)
	}
	if strings.Contains(err.Error(), "wrongwrongwrong") {
		t.Errorf("token in error %q", err)
	}
}

func TestSendTimeout(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	pc := providerConfig(srv)
	pc.Spec.Timeout = &metav1.Duration{Duration: 100 * time.Millisecond}
	s := newSender(t, pc)
	srv.Script.Push(fake.Fault{Latency: time.Second})
	start := time.Now()
	_, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
	e := senders.AsError(err)
	if e.Permanent || e.Reason != senders.ReasonTimeout {
		t.Errorf("got %+v", e)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("took %s", d)
	}

	// The caller's context bounds the call too.
	srv.Script.Push(fake.Fault{Latency: time.Second})
	pc.Spec.Timeout = &metav1.Duration{Duration: 5 * time.Second}
	s = newSender(t, pc)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = s.Send(ctx, senders.Address{Phone: to}, sms("hi"))
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonTimeout {
		t.Errorf("ctx deadline: got %+v", e)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	s := newSender(t, providerConfig(srv))
	_ = srv.Close()
	_, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonNetwork {
		t.Errorf("got %+v", e)
	}
}

func TestConcurrentSends(t *testing.T) {
	srv := startFake(t, twiliofake.Options{})
	srv.Script.SetRates(fake.Rate{P: 0.3, Fault: fake.Fault{Reason: "20429"}})
	s := newSender(t, providerConfig(srv))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := s.Send(context.Background(), senders.Address{Phone: to}, sms("hi"))
			if e := senders.AsError(err); e != nil && e.Reason != senders.ReasonRateLimited {
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if n := srv.Received.Len(); n != 50 {
		t.Errorf("received %d", n)
	}
}

func TestConfigFrom(t *testing.T) {
	good := func() senders.ProviderConfig {
		return senders.ProviderConfig{
			Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, Twilio: &v1alpha1.TwilioConfig{From: from}},
			Secret: map[string][]byte{
				"accountSID": []byte(twiliofake.DefaultAccountSID),
				"authToken":  []byte(twiliofake.DefaultAuthToken),
			},
		}
	}
	cases := []struct {
		name   string
		mutate func(*senders.ProviderConfig)
		reason string
		field  string
	}{
		{"no block", func(pc *senders.ProviderConfig) { pc.Spec.Twilio = nil }, v1alpha1.ReasonInvalidSpec, "spec.twilio"},
		{"both senders", func(pc *senders.ProviderConfig) {
			pc.Spec.Twilio.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef"
		}, v1alpha1.ReasonInvalidSpec, "spec.twilio"},
		{"bad from", func(pc *senders.ProviderConfig) { pc.Spec.Twilio.From = "4155550199" }, v1alpha1.ReasonInvalidSpec, "spec.twilio.from"},
		{"no sid", func(pc *senders.ProviderConfig) { delete(pc.Secret, "accountSID") }, v1alpha1.ReasonSecretKeyMissing, "accountSID"},
		{"no token", func(pc *senders.ProviderConfig) { pc.Secret["authToken"] = nil }, v1alpha1.ReasonSecretKeyMissing, "authToken"},
		{"bad sid", func(pc *senders.ProviderConfig) { pc.Secret["accountSID"] = []byte("AC-nope") }, v1alpha1.ReasonInvalidSecret, "accountSID"},
		{"bad token", func(pc *senders.ProviderConfig) { pc.Secret["authToken"] = []byte("tok:en") }, v1alpha1.ReasonInvalidSecret, "authToken"},
		{"api key without secret", func(pc *senders.ProviderConfig) { pc.Secret["apiKeySID"] = []byte(apiKey) }, v1alpha1.ReasonSecretKeyMissing, "apiKeySecret"},
		{"bad api key", func(pc *senders.ProviderConfig) {
			pc.Secret["apiKeySID"] = []byte("SKnope")
			pc.Secret["apiKeySecret"] = []byte("x")
		}, v1alpha1.ReasonInvalidSecret, "apiKeySID"},
		{"bad endpoint", func(pc *senders.ProviderConfig) { pc.Spec.Endpoint = "ftp://x" }, v1alpha1.ReasonInvalidSpec, "spec.endpoint"},
		{"bad CA", func(pc *senders.ProviderConfig) { pc.CA = []byte("not pem") }, v1alpha1.ReasonInvalidSecret, "tls.caSecretRef"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := good()
			tc.mutate(&pc)
			_, err := twilio.ConfigFrom(pc)
			var ce *senders.ConfigError
			if !errors.As(err, &ce) || ce.Reason != tc.reason || ce.Field != tc.field {
				t.Fatalf("got %v (%#v)", err, ce)
			}
			if strings.Contains(err.Error(), "tok:en") {
				t.Errorf("secret value quoted: %q", err)
			}
		})
	}
	cfg, err := twilio.ConfigFrom(good())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Endpoint.String() != twilio.DefaultEndpoint {
		t.Errorf("endpoint %v", cfg.Endpoint)
	}
	if s := cfg.String() + cfg.GoString(); strings.Contains(s, twiliofake.DefaultAuthToken) {
		t.Errorf("token printed: %s", s)
	}
}

func assertNoSecrets(t *testing.T, srv *twiliofake.Server, err error) {
	t.Helper()
	for _, s := range []string{srv.AuthToken(), to} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func TestStatusCallback(t *testing.T) {
	srv := startFake(t, twiliofake.Options{APIKeySID: apiKey, APIKeySecret: apiKeyPw})
	const hook = "https://herald.example.com/providers/namespaces/team/sms/status"
	msg := sms("hi")
	msg.Notification = senders.NotificationRef{Namespace: "team", Name: "build-1", UID: "uid-1"}

	pc := providerConfig(srv)
	pc.ReceiptURL = hook
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{Phone: to}, msg); err != nil {
		t.Fatal(err)
	}
	cb, err := url.Parse(srv.Accepted()[0].StatusCallback)
	if err != nil || cb.Scheme+"://"+cb.Host+cb.Path != hook {
		t.Fatalf("StatusCallback %q: %v", srv.Accepted()[0].StatusCallback, err)
	}
	if q := cb.Query(); q.Get("ns") != "team" || q.Get("n") != "build-1" || q.Get("uid") != "uid-1" || q.Get("m") != msg.ID {
		t.Fatalf("StatusCallback query %v", q)
	}

	// API key credentials alone cannot verify Twilio's signature: no callback is asked for.
	pc.Secret = map[string][]byte{"accountSID": []byte(srv.AccountSID()), "apiKeySID": []byte(apiKey), "apiKeySecret": []byte(apiKeyPw)}
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{Phone: to}, msg); err != nil {
		t.Fatal(err)
	}
	// Nor without a receipt URL.
	if _, err := newSender(t, providerConfig(srv)).Send(context.Background(), senders.Address{Phone: to}, msg); err != nil {
		t.Fatal(err)
	}
	for _, r := range srv.Accepted()[1:] {
		if r.StatusCallback != "" {
			t.Errorf("StatusCallback %q asked for", r.StatusCallback)
		}
	}
}
