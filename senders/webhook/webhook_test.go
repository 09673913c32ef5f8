package webhook_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/egress"
	"github.com/herald-dev/herald/senders/fake"
	whfake "github.com/herald-dev/herald/senders/fake/webhook"
	"github.com/herald-dev/herald/senders/sendertest"
	"github.com/herald-dev/herald/senders/webhook"
)

const hookPath = "/services/T0001/B0002/XXXXsecretXXXX"

var hmacKey = []byte("shh-its-a-key")

func startFake(t *testing.T, key []byte) *whfake.Server {
	return sendertest.Fake(t, whfake.New, whfake.Options{HMACKey: key})
}

func providerConfig(srv *whfake.Server, format string) senders.ProviderConfig {
	return senders.ProviderConfig{
		Egress: egress.Loopback(), // the fake listens here
		Name:   "ChannelProvider/chat",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:      v1alpha1.ProviderWebhook,
			SecretRef: &v1alpha1.LocalObjectReference{Name: "chat"},
			Timeout:   &metav1.Duration{Duration: 2 * time.Second},
			Webhook: &v1alpha1.WebhookConfig{
				URL:     "https://ignored.example/spec-url",
				Format:  format,
				Headers: map[string]string{"X-Team": "platform", "Authorization": "Bearer abc"},
			},
		},
		Secret: map[string][]byte{
			"url":     []byte(srv.URL() + hookPath + "?token=qs-secret\n"),
			"hmacKey": hmacKey,
		},
	}
}

func newSender(t *testing.T, pc senders.ProviderConfig) *webhook.Sender {
	t.Helper()
	cfg, err := webhook.ConfigFrom(pc)
	if err != nil {
		t.Fatalf("ConfigFrom: %v", err)
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func message() *senders.Message {
	return &senders.Message{
		ID:           "uid-7/2",
		Notification: senders.NotificationRef{Namespace: "ci", Name: "build-1234", UID: "uid-7", Category: "builds"},
		Priority:     v1alpha1.PriorityHigh,
		Webhook:      &senders.Webhook{Text: "Build 1234 failed"},
	}
}

func TestSendJSONEnvelopeSigned(t *testing.T) {
	srv := startFake(t, hmacKey)
	s := newSender(t, providerConfig(srv, ""))
	if _, err := s.Send(context.Background(), senders.Address{}, message()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	r := got[0]
	if !r.Signed || !r.Verified {
		t.Errorf("signature not verified by the receiver")
	}
	if r.Path != hookPath || r.RawQuery != "token=qs-secret" || r.Method != "POST" {
		t.Errorf("request line %s %s?%s", r.Method, r.Path, r.RawQuery)
	}
	for k, want := range map[string]string{
		"Content-Type":      "application/json",
		"X-Herald-Delivery": "uid-7/2",
		"X-Team":            "platform",
		"Authorization":     "Bearer abc",
	} {
		if v := r.Header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if !strings.HasPrefix(r.Header.Get("X-Herald-Signature"), "sha256=") || r.Header.Get("X-Herald-Timestamp") == "" {
		t.Errorf("signature headers %v", r.Header)
	}
	if want := webhook.Sign(hmacKey, r.Header.Get("X-Herald-Timestamp"), r.Body); r.Header.Get("X-Herald-Signature") != want {
		t.Errorf("Sign disagrees with the header")
	}
	var env webhook.Envelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		t.Fatal(err)
	}
	want := webhook.Envelope{
		ID:           "uid-7/2",
		Notification: webhook.EnvelopeSource{Namespace: "ci", Name: "build-1234", UID: "uid-7"},
		Category:     "builds", Priority: "high", Text: "Build 1234 failed",
	}
	if env.ID != want.ID || env.Notification != want.Notification || env.Category != want.Category || env.Priority != want.Priority || env.Text != want.Text {
		t.Errorf("envelope %+v", env)
	}
}

func TestSendSlackAndRawBody(t *testing.T) {
	srv := startFake(t, nil)
	pc := providerConfig(srv, "slack")
	delete(pc.Secret, "hmacKey")
	s := newSender(t, pc)
	if _, err := s.Send(context.Background(), senders.Address{}, message()); err != nil {
		t.Fatal(err)
	}
	m := message()
	m.Webhook.Body = json.RawMessage(`{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*failed*"}}]}`)
	if _, err := s.Send(context.Background(), senders.Address{}, m); err != nil {
		t.Fatal(err)
	}
	got := srv.Accepted()
	var slack struct {
		Text        string
		Attachments []struct{ Blocks []struct{ Type string } }
	}
	if err := json.Unmarshal(got[0].Body, &slack); err != nil || slack.Text != "Build 1234 failed" ||
		len(slack.Attachments) != 1 || len(slack.Attachments[0].Blocks) != 1 || slack.Attachments[0].Blocks[0].Type != "section" {
		t.Errorf("slack body %s: want the text as fallback and one section block", got[0].Body)
	}
	if string(got[1].Body) != string(m.Webhook.Body) {
		t.Errorf("raw body %s", got[1].Body)
	}
	if got[0].Signed || got[0].Header.Get("X-Herald-Timestamp") != "" {
		t.Errorf("signed without a key")
	}
}

func TestWrongKeyRejectedByReceiver(t *testing.T) {
	srv := startFake(t, []byte("the receiver's key"))
	s := newSender(t, providerConfig(srv, ""))
	_, err := s.Send(context.Background(), senders.Address{}, message())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.Code != "invalid_signature" {
		t.Errorf("got %+v", e)
	}
	if r := srv.Received.All()[0]; !r.Signed || r.Verified {
		t.Errorf("receiver verified a bad signature")
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name       string
		fault      fake.Fault
		permanent  bool
		reason     string
		code       string
		retryAfter time.Duration
	}{
		{"429", fake.Fault{Status: 429, Reason: "rate_limited", RetryAfter: 30 * time.Second}, false, senders.ReasonRateLimited, "rate_limited", 30 * time.Second},
		{"500", fake.Fault{Status: 500}, false, senders.ReasonUnavailable, "internal_server_error", 0},
		{"503 retry-after", fake.Fault{Status: 503, RetryAfter: 4 * time.Second}, false, senders.ReasonUnavailable, "service_unavailable", 4 * time.Second},
		{"410 archived", fake.Fault{Status: 410, Reason: "channel_is_archived"}, true, senders.ReasonRejected, "channel_is_archived", 0},
		{"404", fake.Fault{Status: 404, Reason: "channel_not_found"}, true, senders.ReasonRejected, "channel_not_found", 0},
		{"403", fake.Fault{Status: 403, Reason: "invalid_token"}, true, senders.ReasonAuthFailed, "invalid_token", 0},
		{"400", fake.Fault{Status: 400, Reason: "invalid_payload"}, true, senders.ReasonPayloadRejected, "invalid_payload", 0},
		{"409", fake.Fault{Status: 409}, true, senders.ReasonRejected, "conflict", 0},
		{"302", fake.Fault{Status: 302}, true, senders.ReasonRejected, "found", 0},
		{"echoes the URL", fake.Fault{Status: 404, Reason: "Cannot POST " + hookPath + "?token=qs-secret"}, true, senders.ReasonRejected, "", 0},
		{"dropped", fake.Fault{Drop: true}, false, senders.ReasonNetwork, "", 0},
		{"502 proxy page", fake.Fault{Status: 502, Body: fake.HTMLError(502)}, false, senders.ReasonUnavailable, "", 0},
	}
	srv := startFake(t, hmacKey)
	s := newSender(t, providerConfig(srv, ""))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.Script.Push(tc.fault)
			_, err := s.Send(context.Background(), senders.Address{}, message())
			var e *senders.Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not a *senders.Error", err)
			}
			if e.Permanent != tc.permanent || e.Reason != tc.reason || e.Code != tc.code || e.RetryAfter != tc.retryAfter {
				t.Errorf("got %+v", e)
			}
			// Only the status and a Slack-style token reach status, never
			// the body of an answer from an arbitrary host.
			if strings.Contains(e.Message, "Cannot POST") || strings.Contains(e.Message, "<") {
				t.Errorf("message carries the receiver's body: %q", e.Message)
			}
			assertNoURL(t, srv, err)
		})
	}
}

func TestSendTimeoutAndRefused(t *testing.T) {
	srv := startFake(t, hmacKey)
	pc := providerConfig(srv, "")
	pc.Spec.Timeout = &metav1.Duration{Duration: 100 * time.Millisecond}
	s := newSender(t, pc)
	srv.Script.Push(fake.Fault{Latency: time.Second})
	start := time.Now()
	_, err := s.Send(context.Background(), senders.Address{}, message())
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonTimeout {
		t.Errorf("timeout: got %+v", e)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("took %s", d)
	}
	assertNoURL(t, srv, err)

	_ = srv.Close()
	_, err = s.Send(context.Background(), senders.Address{}, message())
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonNetwork {
		t.Errorf("refused: got %+v", e)
	}
	assertNoURL(t, srv, err)
}

// endpoint takes the scheme and host; the path stays the url's. An
// endpoint with a path is refused, not joined to the url's path.
func TestEndpointOverride(t *testing.T) {
	srv := startFake(t, nil)
	pc := providerConfig(srv, "slack")
	pc.Secret = map[string][]byte{"url": []byte("https://hooks.slack.example" + hookPath)}
	pc.Spec.Endpoint = srv.URL()
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{}, message()); err != nil {
		t.Fatal(err)
	}
	if p := srv.Accepted()[0].Path; p != hookPath {
		t.Errorf("path %q, want the url's %q", p, hookPath)
	}
	pc.Spec.Endpoint = srv.URL() + "/proxy"
	if _, err := webhook.ConfigFrom(pc); err == nil || !strings.Contains(err.Error(), "spec.endpoint") || !strings.Contains(err.Error(), "remove its path") {
		t.Errorf("an endpoint with a path: %v, want a refusal naming spec.endpoint", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	srv := startFake(t, hmacKey)
	srv.Script.SetRates(fake.Rate{P: 0.2, Fault: fake.Fault{Status: 503}})
	s := newSender(t, providerConfig(srv, ""))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := s.Send(context.Background(), senders.Address{}, message())
			if e := senders.AsError(err); e != nil && e.Reason != senders.ReasonUnavailable {
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	for _, r := range srv.Received.All() {
		if !r.Verified {
			t.Errorf("unverified request")
		}
	}
}

func TestConfigFrom(t *testing.T) {
	good := func() senders.ProviderConfig {
		return senders.ProviderConfig{
			Spec: &v1alpha1.ChannelProviderSpec{
				Type:    v1alpha1.ProviderWebhook,
				Webhook: &v1alpha1.WebhookConfig{URL: "https://example.com/hook"},
			},
		}
	}
	cases := []struct {
		name   string
		mutate func(*senders.ProviderConfig)
		reason string
		field  string
	}{
		{"no block", func(pc *senders.ProviderConfig) { pc.Spec.Webhook = nil }, v1alpha1.ReasonInvalidSpec, "spec.webhook"},
		{"no url", func(pc *senders.ProviderConfig) { pc.Spec.Webhook.URL = "" }, v1alpha1.ReasonInvalidSpec, "spec.webhook.url"},
		{"secret without url", func(pc *senders.ProviderConfig) {
			pc.Spec.Webhook.URL = ""
			pc.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: "s"}
			pc.Secret = map[string][]byte{"hmacKey": []byte("k")}
		}, v1alpha1.ReasonSecretKeyMissing, "url"},
		{"bad secret url", func(pc *senders.ProviderConfig) {
			pc.Secret = map[string][]byte{"url": []byte("hooks.slack.com/services/T/B/supersecret")}
		}, v1alpha1.ReasonInvalidSecret, "url"},
		{"bad spec url", func(pc *senders.ProviderConfig) { pc.Spec.Webhook.URL = "mailto:x@y" }, v1alpha1.ReasonInvalidSpec, "spec.webhook.url"},
		{"bad format", func(pc *senders.ProviderConfig) { pc.Spec.Webhook.Format = "xml" }, v1alpha1.ReasonInvalidSpec, "spec.webhook.format"},
		{"reserved header", func(pc *senders.ProviderConfig) {
			pc.Spec.Webhook.Headers = map[string]string{"x-herald-signature": "forged"}
		}, v1alpha1.ReasonInvalidSpec, "spec.webhook.headers"},
		{"bad header name", func(pc *senders.ProviderConfig) {
			pc.Spec.Webhook.Headers = map[string]string{"X Bad": "v"}
		}, v1alpha1.ReasonInvalidSpec, "spec.webhook.headers"},
		{"header injection", func(pc *senders.ProviderConfig) {
			pc.Spec.Webhook.Headers = map[string]string{"X-A": "v\r\nX-B: w"}
		}, v1alpha1.ReasonInvalidSpec, "spec.webhook.headers"},
		{"bad endpoint", func(pc *senders.ProviderConfig) { pc.Spec.Endpoint = "//x" }, v1alpha1.ReasonInvalidSpec, "spec.endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := good()
			tc.mutate(&pc)
			_, err := webhook.ConfigFrom(pc)
			var ce *senders.ConfigError
			if !errors.As(err, &ce) || ce.Reason != tc.reason || ce.Field != tc.field {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "supersecret") {
				t.Errorf("URL quoted: %q", err)
			}
		})
	}
	// The Secret's url wins over the spec's.
	pc := good()
	pc.Secret = map[string][]byte{"url": []byte("https://secret.example/hook/supersecret")}
	cfg, err := webhook.ConfigFrom(pc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL.Host != "secret.example" || cfg.Format != "json" {
		t.Errorf("config %v", cfg)
	}
	if s := cfg.String() + cfg.GoString(); strings.Contains(s, "supersecret") {
		t.Errorf("URL printed: %s", s)
	}
}

func assertNoURL(t *testing.T, srv *whfake.Server, err error) {
	t.Helper()
	for _, s := range []string{hookPath, "qs-secret", "XXXXsecretXXXX", string(hmacKey)} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func FuzzWebhookBody(f *testing.F) {
	f.Add("json", "text", []byte(nil), "id", "ns", "name")
	f.Add("slack", "", []byte(`{"a":1}`), "", "", "")
	f.Add("json", "\xff\x00\u2028", []byte(`{`), "\"", "<", ">")
	f.Fuzz(func(t *testing.T, format, text string, body []byte, id, ns, name string) {
		msg := &senders.Message{ID: id, Notification: senders.NotificationRef{Namespace: ns, Name: name},
			Webhook: &senders.Webhook{Text: text, Body: body}}
		b, err := webhook.Body(format, msg)
		if err != nil {
			if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonPayloadRejected {
				t.Fatalf("unexpected error %+v", e)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %q", b)
		}
		if len(body) > 0 {
			if string(b) != string(body) {
				t.Fatalf("body not sent as is")
			}
			return
		}
		var out struct{ Text string }
		if err := json.Unmarshal(b, &out); err != nil || (out.Text != string([]rune(text))) {
			t.Fatalf("text lost: %q -> %q (%v)", text, out.Text, err)
		}
	})
}

func TestTLSWithCA(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	pc := senders.ProviderConfig{
		Egress: egress.Loopback(),
		Spec:   &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{}},
		Secret: map[string][]byte{"url": []byte(srv.URL + hookPath)},
	}
	// Without the CA the certificate is not trusted, which retrying cannot fix.
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{}, message())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.Code != "TLS" {
		t.Errorf("untrusted: got %+v", e)
	}
	if strings.Contains(err.Error(), hookPath) {
		t.Errorf("URL in %q", err)
	}
	pc.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{}, message()); err != nil || got.Load() != 1 {
		t.Errorf("with CA: %v (%d requests)", err, got.Load())
	}
}
