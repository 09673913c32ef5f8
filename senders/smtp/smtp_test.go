package smtp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/fake"
	smtpfake "github.com/herald-dev/herald/senders/fake/smtp"
	"github.com/herald-dev/herald/senders/sendertest"
	"github.com/herald-dev/herald/senders/smtp"
)

const (
	rcpt = "alice@example.com"
	user = "herald"
	pass = "correct horse battery"
)

func startFake(t *testing.T, opts smtpfake.Options) *smtpfake.Server {
	return sendertest.Fake(t, smtpfake.New, opts)
}

func providerConfig(srv *smtpfake.Server) senders.ProviderConfig {
	return senders.ProviderConfig{
		Name: "ChannelProvider/mail",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:    v1alpha1.ProviderSMTP,
			Timeout: &metav1.Duration{Duration: 2 * time.Second},
			SMTP: &v1alpha1.SMTPConfig{
				Host: srv.Host(),
				Port: int32(srv.Port()),
				From: v1alpha1.EmailAddress{Email: "alerts@herald.example", Name: "Herald Alerts"},
			},
		},
		Secret: map[string][]byte{"username": []byte(user), "password": []byte(pass + "\n")},
		CA:     srv.CA(),
	}
}

func newSender(t *testing.T, pc senders.ProviderConfig) *smtp.Sender {
	return sendertest.Build(t, smtp.ConfigFrom, smtp.New, pc)
}

func email() *senders.Message {
	return &senders.Message{
		ID:           "uid-42/0",
		Notification: senders.NotificationRef{Namespace: "ci", Name: "build-1234", UID: "uid-42"},
		Priority:     v1alpha1.PriorityHigh,
		Email:        &senders.Email{Subject: "Build 1234 failed — ünïcode", Text: "It failed.\nSee the log.", HTML: "<p>It <b>failed</b>.</p>"},
	}
}

func TestSendSuccess(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	s := newSender(t, providerConfig(srv))
	res, err := s.Send(context.Background(), senders.Address{Email: rcpt, Name: "Alice"}, email())
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	m := got[0]
	if !m.TLS || m.AuthUser != user {
		t.Errorf("TLS %t, auth user %q", m.TLS, m.AuthUser)
	}
	if m.From != "alerts@herald.example" || len(m.To) != 1 || m.To[0] != rcpt {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	if m.Subject != "Build 1234 failed — ünïcode" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.MessageID != "<uid-42/0@herald.example>" || res.ProviderMessageID != m.MessageID {
		t.Errorf("Message-ID %q, result %q", m.MessageID, res.ProviderMessageID)
	}
	if m.Text != "It failed.\nSee the log." {
		t.Errorf("text %q", m.Text)
	}
	if m.HTML != "<p>It <b>failed</b>.</p>" {
		t.Errorf("html %q", m.HTML)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("content type %q", ct)
	}
	if to := m.Header.Get("To"); !strings.Contains(to, "Alice") || !strings.Contains(to, rcpt) {
		t.Errorf("To header %q", to)
	}
	if m.Header.Get("Importance") == "" && m.Header.Get("X-Priority") == "" {
		t.Errorf("high priority not marked: %v", m.Header)
	}

	// A repeat carries the same Message-ID, and reuses the connection.
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
		t.Fatal(err)
	}
	if again := srv.Accepted()[1]; again.MessageID != m.MessageID {
		t.Errorf("Message-ID changed: %q", again.MessageID)
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("%d connections for two sends", n)
	}
}

func TestSendWithoutAuthOrTLS(t *testing.T) {
	srv := startFake(t, smtpfake.Options{NoTLS: true})
	pc := providerConfig(srv)
	off := false
	pc.Spec.SMTP.StartTLS = &off
	pc.Secret = nil
	if _, err := newSender(t, pc).Send(context.Background(), senders.Address{Email: rcpt}, &senders.Message{
		ID: "x", Email: &senders.Email{Subject: "s", Text: "plain only"},
	}); err != nil {
		t.Fatal(err)
	}
	m := srv.Accepted()[0]
	if m.TLS || m.Text != "plain only" || m.HTML != "" {
		t.Errorf("got %+v", m)
	}
}

func TestStartTLSRequired(t *testing.T) {
	srv := startFake(t, smtpfake.Options{NoTLS: true})
	pc := providerConfig(srv)
	pc.Secret = nil
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonRejected || !strings.Contains(e.Message, "STARTTLS") {
		t.Errorf("got %+v", e)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	pc := providerConfig(srv)
	pc.CA = nil
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.Code != "TLS" {
		t.Errorf("got %+v", e)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	pc := providerConfig(srv)
	pc.Secret["password"] = []byte("hunter2")
	_, err := newSender(t, pc).Send(context.Background(), senders.Address{Email: rcpt}, email())
	e := senders.AsError(err)
	if !e.Permanent || e.Reason != senders.ReasonAuthFailed || e.StatusCode != 535 {
		t.Errorf("got %+v", e)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password in %q", err)
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name      string
		fault     fake.Fault
		permanent bool
		reason    string
		status    int
		code      string
	}{
		{"550 mailbox", fake.Fault{Status: 550}, true, senders.ReasonInvalidAddress, 550, "5.1.1"},
		{"550 quoting address", fake.Fault{Status: 550, Reason: "5.1.1 <" + rcpt + ">: Recipient address rejected"}, true, senders.ReasonInvalidAddress, 550, "5.1.1"},
		{"553", fake.Fault{Status: 553}, true, senders.ReasonInvalidAddress, 553, "5.1.3"},
		{"552 size", fake.Fault{Status: 552}, true, senders.ReasonRejected, 552, "5.3.4"},
		{"554 policy", fake.Fault{Status: 554}, true, senders.ReasonRejected, 554, "5.7.1"},
		{"535 auth", fake.Fault{Status: 535}, true, senders.ReasonAuthFailed, 535, "5.7.8"},
		{"421", fake.Fault{Status: 421}, false, senders.ReasonUnavailable, 421, "4.3.2"},
		{"450 greylisted", fake.Fault{Status: 450}, false, senders.ReasonUnavailable, 450, "4.2.1"},
		{"451", fake.Fault{Status: 451}, false, senders.ReasonUnavailable, 451, "4.3.0"},
		{"452", fake.Fault{Status: 452}, false, senders.ReasonUnavailable, 452, "4.2.2"},
		{"dropped", fake.Fault{Drop: true}, false, senders.ReasonNetwork, 0, ""},
	}
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	s := newSender(t, providerConfig(srv))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.Script.Push(tc.fault)
			_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
			var e *senders.Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not a *senders.Error", err)
			}
			if e.Permanent != tc.permanent || e.Reason != tc.reason || e.StatusCode != tc.status || e.Code != tc.code {
				t.Errorf("got %+v", e)
			}
			for _, secret := range []string{rcpt, pass} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains %q", err, secret)
				}
			}
			// The next send works: a failure does not poison the pool.
			if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
				t.Errorf("send after failure: %v", err)
			}
		})
	}
}

func TestSendTimeout(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	pc := providerConfig(srv)
	pc.Spec.Timeout = &metav1.Duration{Duration: 200 * time.Millisecond}
	s := newSender(t, pc)
	srv.Script.Push(fake.Fault{Latency: 2 * time.Second})
	start := time.Now()
	_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonTimeout {
		t.Errorf("got %+v", e)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := startFake(t, smtpfake.Options{})
	pc := providerConfig(srv)
	pc.Secret = nil
	s := newSender(t, pc)
	_ = srv.Close()
	_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
	if e := senders.AsError(err); e.Permanent || e.Reason != senders.ReasonNetwork {
		t.Errorf("got %+v", e)
	}
}

func TestStalePooledConnection(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	s := newSender(t, providerConfig(srv))
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
		t.Fatal(err)
	}
	// 421 closes the pooled connection on the server side after answering.
	srv.Script.Push(fake.Fault{Status: 421})
	_, _ = s.Send(context.Background(), senders.Address{Email: rcpt}, email())
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email()); err != nil {
		t.Fatalf("send after the server closed: %v", err)
	}
	if n := len(srv.Accepted()); n != 2 {
		t.Errorf("accepted %d", n)
	}
}

func TestLocalValidation(t *testing.T) {
	srv := startFake(t, smtpfake.Options{})
	pc := providerConfig(srv)
	pc.Secret = nil
	s := newSender(t, pc)
	_, err := s.Send(context.Background(), senders.Address{Email: "not an address"}, email())
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonInvalidAddress {
		t.Errorf("got %+v", e)
	}
	_, err = s.Send(context.Background(), senders.Address{Email: rcpt}, &senders.Message{ID: "x", Email: &senders.Email{Subject: "s"}})
	if e := senders.AsError(err); !e.Permanent || e.Reason != senders.ReasonPayloadRejected {
		t.Errorf("got %+v", e)
	}
	if srv.Connections() != 0 {
		t.Errorf("connected for an invalid message")
	}
}

func TestConcurrentSends(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	srv.Script.SetRates(fake.Rate{P: 0.2, Fault: fake.Fault{Status: 451}})
	s := newSender(t, providerConfig(srv))
	// Four workers, as the dispatcher would run them, ten sends each.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				_, err := s.Send(context.Background(), senders.Address{Email: rcpt}, email())
				if e := senders.AsError(err); e != nil && e.Reason != senders.ReasonUnavailable {
					t.Errorf("unexpected %v", err)
				}
			}
		})
	}
	wg.Wait()
	if srv.Connections() >= 30 {
		t.Errorf("no connection reuse: %d connections", srv.Connections())
	}
}

func TestConfigFrom(t *testing.T) {
	good := func() senders.ProviderConfig {
		return senders.ProviderConfig{
			Spec: &v1alpha1.ChannelProviderSpec{
				Type: v1alpha1.ProviderSMTP,
				SMTP: &v1alpha1.SMTPConfig{Host: "smtp.example.com", From: v1alpha1.EmailAddress{Email: "a@b.example"}},
			},
			Secret: map[string][]byte{"username": []byte("u"), "password": []byte("p")},
		}
	}
	off := false
	cases := []struct {
		name   string
		mutate func(*senders.ProviderConfig)
		reason string
		field  string
	}{
		{"no block", func(pc *senders.ProviderConfig) { pc.Spec.SMTP = nil }, v1alpha1.ReasonInvalidSpec, "spec.smtp"},
		{"bad host", func(pc *senders.ProviderConfig) { pc.Spec.SMTP.Host = "smtp://x" }, v1alpha1.ReasonInvalidSpec, "spec.smtp.host"},
		{"bad from", func(pc *senders.ProviderConfig) { pc.Spec.SMTP.From.Email = "x" }, v1alpha1.ReasonInvalidSpec, "spec.smtp.from.email"},
		{"user without password", func(pc *senders.ProviderConfig) { delete(pc.Secret, "password") }, v1alpha1.ReasonSecretKeyMissing, "password"},
		{"password without user", func(pc *senders.ProviderConfig) { delete(pc.Secret, "username") }, v1alpha1.ReasonSecretKeyMissing, "username"},
		{"credentials in the clear", func(pc *senders.ProviderConfig) { pc.Spec.SMTP.StartTLS = &off }, v1alpha1.ReasonInvalidSpec, "spec.smtp.startTLS"},
		{"bad CA", func(pc *senders.ProviderConfig) { pc.CA = []byte("x") }, v1alpha1.ReasonInvalidSecret, "tls.caSecretRef"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := good()
			tc.mutate(&pc)
			_, err := smtp.ConfigFrom(pc)
			var ce *senders.ConfigError
			if !errors.As(err, &ce) || ce.Reason != tc.reason || ce.Field != tc.field {
				t.Fatalf("got %v", err)
			}
		})
	}
	cfg, err := smtp.ConfigFrom(good())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 587 || cfg.Security != smtp.StartTLS || cfg.TLS.ServerName != "smtp.example.com" {
		t.Errorf("defaults: %v", cfg)
	}
	if strings.Contains(cfg.String()+cfg.GoString(), "p}") {
		t.Errorf("printed %s", cfg)
	}
	pc := good()
	pc.Spec.SMTP.Port = 465
	pc.Spec.SMTP.StartTLS = &off
	if cfg, err := smtp.ConfigFrom(pc); err != nil || cfg.Security != smtp.ImplicitTLS {
		t.Errorf("port 465: %v %v", cfg.Security, err)
	}
}

func TestListUnsubscribe(t *testing.T) {
	srv := startFake(t, smtpfake.Options{Username: user, Password: pass})
	s := newSender(t, providerConfig(srv))
	msg := email()
	msg.Email.ListUnsubscribe = "https://herald.example.com/unsubscribe/abc.def"
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, msg); err != nil {
		t.Fatal(err)
	}
	msg = email()
	msg.Email.ListUnsubscribe = "https://evil.example/\r\nBcc: x@example.com"
	if _, err := s.Send(context.Background(), senders.Address{Email: rcpt}, msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Accepted()
	if h := got[0].Header; h.Get("List-Unsubscribe") != "<https://herald.example.com/unsubscribe/abc.def>" || h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Errorf("headers %v", h)
	}
	if h := got[1].Header; h.Get("List-Unsubscribe") != "" || h.Get("Bcc") != "" {
		t.Errorf("a URL with a line break became headers: %v", h)
	}
}
