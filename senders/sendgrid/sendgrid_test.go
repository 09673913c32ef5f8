package sendgrid_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/egress"
	"github.com/herald-dev/herald/senders/fake"
	sgfake "github.com/herald-dev/herald/senders/fake/sendgrid"
	"github.com/herald-dev/herald/senders/sendertest"
	"github.com/herald-dev/herald/senders/sendgrid"
)

const rcpt = "alice@example.com"

func providerConfig(srv *sgfake.Server) senders.ProviderConfig {
	return senders.ProviderConfig{
		Egress: egress.Loopback(), // the fake listens here
		Name:   "ChannelProvider/mail",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:     v1alpha1.ProviderSendGrid,
			Endpoint: srv.URL(),
			Timeout:  &metav1.Duration{Duration: 2 * time.Second},
			SendGrid: &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "alerts@herald.example", Name: "Herald"}},
		},
		Secret: map[string][]byte{"apiKey": []byte(srv.APIKey() + "\n")},
	}
}

func startFake(t *testing.T) *sgfake.Server {
	return sendertest.Fake(t, sgfake.New, sgfake.Options{})
}

func newSender(t *testing.T, pc senders.ProviderConfig) *sendgrid.Sender {
	return sendertest.Build(t, sendgrid.ConfigFrom, sendgrid.New, pc)
}

func email() *senders.Message {
	return &senders.Message{
		ID:           "9f1c2d3e-uid/0",
		Notification: senders.NotificationRef{Namespace: "ci", Name: "build-1234", UID: "9f1c2d3e-uid", Category: "builds"},
		Email:        &senders.Email{Subject: "Build 1234 failed", Text: "It failed.", HTML: "<p>It failed.</p>"},
	}
}

func TestSendSuccess(t *testing.T) {
	srv := startFake(t)
	s := newSender(t, providerConfig(srv))
	res, err := s.Send(context.Background(), senders.Address{Email: rcpt, Name: "Alice"}, email())
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	r := got[0]
	if res.ProviderMessageID == "" || res.ProviderMessageID != r.MessageID {
		t.Errorf("ProviderMessageID %q, fake %q", res.ProviderMessageID, r.MessageID)
	}
	if h := r.Header.Get("Authorization"); h != "Bearer "+srv.APIKey() {
		t.Errorf("authorization %q", h)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	m := r.Mail
	if m.From.Email != "alerts@herald.example" || m.From.Name != "Herald" || m.Subject != "Build 1234 failed" {
		t.Errorf("from/subject: %+v", m)
	}
	if len(m.Personalizations) != 1 || len(m.Personalizations[0].To) != 1 || m.Personalizations[0].To[0] != (sgfake.Email{Email: rcpt, Name: "Alice"}) {
		t.Errorf("personalizations: %+v", m.Personalizations)
	}
	if len(m.Content) != 2 || m.Content[0] != (sgfake.Content{Type: "text/plain", Value: "It failed."}) || m.Content[1].Type != "text/html" {
		t.Errorf("content: %+v", m.Content)
	}
	if m.Headers["Message-ID"] != "<9f1c2d3e-uid/0@herald.example>" {
		t.Errorf("Message-ID %q", m.Headers["Message-ID"])
	}
	want := map[string]string{"herald_message_id": "9f1c2d3e-uid/0", "herald_notification": "ci/build-1234", "herald_notification_uid": "9f1c2d3e-uid"}
	for k, v := range want {
		if m.CustomArgs[k] != v {
			t.Errorf("custom_args[%s] = %q, want %q", k, m.CustomArgs[k], v)
		}
	}
	if len(m.Categories) != 1 || m.Categories[0] != "builds" {
		t.Errorf("categories %v", m.Categories)
	}

	// The same message again gives the same Message-ID and custom args.
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
		t.Fatal(err)
	}
	again := srv.Accepted()[1].Mail
	if again.Headers["Message-ID"] != m.Headers["Message-ID"] || again.CustomArgs["herald_message_id"] != m.CustomArgs["herald_message_id"] {
		t.Errorf("not deterministic: %v vs %v", again.Headers, m.Headers)
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name       string
		fault      fake.Fault
		permanent  bool
		reason     string
		retryAfter time.Duration
	}{
		{"401", fake.Fault{Status: 401}, true, senders.ReasonAuthFailed, 0},
		{"403 sender identity", fake.Fault{Status: 403}, true, senders.ReasonAuthFailed, 0},
		{"400", fake.Fault{Status: 400}, true, senders.ReasonPayloadRejected, 0},
		{"413", fake.Fault{Status: 413}, true, senders.ReasonPayloadRejected, 0},
		{"429 retry-after", fake.Fault{Status: 429, RetryAfter: 9 * time.Second}, false, senders.ReasonRateLimited, 9 * time.Second},
		{"500", fake.Fault{Status: 500}, false, senders.ReasonUnavailable, 0},
		{"503", fake.Fault{Status: 503, RetryAfter: 2 * time.Second}, false, senders.ReasonUnavailable, 2 * time.Second},
		{"404", fake.Fault{Status: 404}, true, senders.ReasonRejected, 0},
		{"dropped", fake.Fault{Drop: true}, false, senders.ReasonNetwork, 0},
		{"502 proxy page", fake.Fault{Status: 502, Body: fake.HTMLError(502), RetryAfter: 5 * time.Second}, false, senders.ReasonUnavailable, 5 * time.Second},
		{"message quotes address", fake.Fault{Status: 400, Reason: "Mailbox " + rcpt + " is on a suppression list"}, true, senders.ReasonPayloadRejected, 0},
	}
	srv := startFake(t)
	s := newSender(t, providerConfig(srv))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.Script.Push(tc.fault)
			_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
			var e *senders.Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not a *senders.Error", err)
			}
			if e.Permanent != tc.permanent || e.Reason != tc.reason || e.RetryAfter != tc.retryAfter {
				t.Errorf("got %+v", e)
			}
			if tc.fault.Status != 0 && e.StatusCode != tc.fault.Status {
				t.Errorf("status %d", e.StatusCode)
			}
			for _, secret := range []string{srv.APIKey(), rcpt} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains %q", err, secret)
				}
			}
		})
	}
}

func TestSendInvalidRecipientFromProvider(t *testing.T) {
	// The fake validates addresses the way SendGrid does; a 400 naming the
	// to field is an invalid address, not a bad payload.
	srv := startFake(t)
	s := newSender(t, providerConfig(srv))
	_, err := s.Send(context.Background(), senders.Address{Email: "bob@[bad"}, email())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonInvalidAddress {
		t.Errorf("got %+v", e)
	}
	if srv.Received.Len() != 0 {
		t.Errorf("invalid address reached the provider")
	}
}

func TestSendLocalValidation(t *testing.T) {
	srv := startFake(t)
	s := newSender(t, providerConfig(srv))
	_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, &senders.Message{ID: "x", Email: &senders.Email{Subject: "s"}})
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonPayloadRejected {
		t.Errorf("got %+v", e)
	}
}

func TestSendTimeout(t *testing.T) {
	srv := startFake(t)
	pc := providerConfig(srv)
	pc.Spec.Timeout = &metav1.Duration{Duration: 100 * time.Millisecond}
	s := newSender(t, pc)
	srv.Script.Push(fake.Fault{Latency: time.Second})
	start := time.Now()
	_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonTimeout {
		t.Errorf("got %+v", e)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("took %s", d)
	}
}

func TestSendWrongKey(t *testing.T) {
	srv := startFake(t)
	pc := providerConfig(srv)
	pc.Secret["apiKey"] = []byte("SG.wrong.key")
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.StatusCode != 401 {
		t.Errorf("got %+v", e)
	}
	if strings.Contains(err.Error(), "SG.wrong.key") {
		t.Errorf("key in error %q", err)
	}
}

func TestConcurrentSends(t *testing.T) {
	srv := startFake(t)
	srv.Script.SetRates(fake.Rate{P: 0.2, Fault: fake.Fault{Status: 503}})
	s := newSender(t, providerConfig(srv))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			m := email()
			m.ID = "id-" + string(rune('a'+i%26))
			_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, m)
			if e := senders.AsError(err); e != nil && e.Reason != senders.ReasonUnavailable {
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	for _, r := range srv.Accepted() {
		if r.Mail.CustomArgs["herald_message_id"] == "" || !strings.Contains(r.Mail.Headers["Message-ID"], r.Mail.CustomArgs["herald_message_id"]) {
			t.Errorf("bodies mixed up: %v %v", r.Mail.Headers, r.Mail.CustomArgs)
		}
	}
}

func TestConfigFrom(t *testing.T) {
	good := func() senders.ProviderConfig {
		return senders.ProviderConfig{
			Spec: &v1alpha1.ChannelProviderSpec{
				Type:     v1alpha1.ProviderSendGrid,
				SendGrid: &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "a@b.example"}},
			},
			Secret: map[string][]byte{"apiKey": []byte("SG.x.y")},
		}
	}
	cases := []struct {
		name   string
		mutate func(*senders.ProviderConfig)
		reason string
		field  string
	}{
		{"no block", func(pc *senders.ProviderConfig) { pc.Spec.SendGrid = nil }, v1alpha1.ReasonInvalidSpec, "spec.sendgrid"},
		{"bad from", func(pc *senders.ProviderConfig) { pc.Spec.SendGrid.From.Email = "nope" }, v1alpha1.ReasonInvalidSpec, "spec.sendgrid.from.email"},
		{"no key", func(pc *senders.ProviderConfig) { pc.Secret = nil }, v1alpha1.ReasonSecretKeyMissing, "apiKey"},
		{"two-line key", func(pc *senders.ProviderConfig) { pc.Secret["apiKey"] = []byte("SG.x\nSG.y") }, v1alpha1.ReasonInvalidSecret, "apiKey"},
		{"bad endpoint", func(pc *senders.ProviderConfig) { pc.Spec.Endpoint = "https://" }, v1alpha1.ReasonInvalidSpec, "spec.endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := good()
			tc.mutate(&pc)
			_, err := sendgrid.ConfigFrom(pc)
			var ce *senders.ConfigError
			if !errors.As(err, &ce) || ce.Reason != tc.reason || ce.Field != tc.field {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "SG.") {
				t.Errorf("key quoted: %q", err)
			}
		})
	}
	cfg, err := sendgrid.ConfigFrom(good())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cfg.String()+cfg.GoString(), "SG.x.y") {
		t.Error("key printed")
	}
}

// The payload is valid JSON SendGrid's own rules accept, for any input the
// adapter does not reject.
func FuzzSendGridPayload(f *testing.F) {
	f.Add("uid/1", "Subject", "text", "<b>html</b>", "a@example.com", "Name \"quoted\"")
	f.Add("", "", "", "", "", "")
	f.Add("\x00\xff", "\u2028", "\n.\n", "]]>", "x@y.z", "\xff")
	srv, err := sgfake.New(sgfake.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	pc := providerConfig(srv)
	cfg, err := sendgrid.ConfigFrom(pc)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := sendgrid.New(cfg)
	f.Fuzz(func(t *testing.T, id, subject, text, html, addr, name string) {
		msg := &senders.Message{ID: id, Email: &senders.Email{Subject: subject, Text: text, HTML: html}}
		_, err := s.Send(context.Background(), senders.Address{Email: addr, Name: name}, msg)
		if err == nil {
			return
		}
		e := senders.AsError(err)
		if !e.Permanent || (e.Reason != senders.ReasonPayloadRejected && e.Reason != senders.ReasonInvalidAddress) {
			t.Fatalf("unexpected %+v", e)
		}
		if e.StatusCode == http.StatusBadRequest && e.Reason == senders.ReasonPayloadRejected {
			var raw json.RawMessage
			last := srv.Received.All()
			if len(last) > 0 && json.Unmarshal(last[len(last)-1].Raw, &raw) != nil {
				t.Fatalf("invalid JSON sent")
			}
		}
	})
}

func TestListUnsubscribe(t *testing.T) {
	srv := startFake(t)
	s := newSender(t, providerConfig(srv))
	msg := email()
	msg.Email.ListUnsubscribe = "https://herald.example.com/unsubscribe/abc.def"
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
		t.Fatal(err)
	}
	got := srv.Accepted()
	if h := got[0].Mail.Headers; h["List-Unsubscribe"] != "<https://herald.example.com/unsubscribe/abc.def>" || h["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Errorf("headers %v", h)
	}
	if h := got[1].Mail.Headers; h["List-Unsubscribe"] != "" || h["List-Unsubscribe-Post"] != "" {
		t.Errorf("a message without a link has headers %v", h)
	}
}

func TestVerificationKey(t *testing.T) {
	srv := startFake(t)
	pc := providerConfig(srv)
	pc.Secret[sendgrid.KeyWebhookVerificationKey] = []byte(srv.VerificationKey())
	if _, err := sendgrid.ConfigFrom(pc); err != nil {
		t.Fatalf("the fake's key: %v", err)
	}
	pc.Secret[sendgrid.KeyWebhookVerificationKey] = []byte("bm90IGEga2V5")
	var ce *senders.ConfigError
	if _, err := sendgrid.ConfigFrom(pc); !errors.As(err, &ce) || ce.Field != sendgrid.KeyWebhookVerificationKey {
		t.Fatalf("a bad key: %v", err)
	}
}
