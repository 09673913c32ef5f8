package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/egress"
	twiliofake "github.com/herald-dev/herald/senders/fake/twilio"
	"github.com/herald-dev/herald/senders/registry"
	"github.com/herald-dev/herald/senders/sendertest"
)

var allTypes = []v1alpha1.ProviderType{
	v1alpha1.ProviderAPNs, v1alpha1.ProviderFCM, v1alpha1.ProviderTwilio, v1alpha1.ProviderSendGrid,
	v1alpha1.ProviderSMTP, v1alpha1.ProviderWebhook, v1alpha1.ProviderLog,
}

func p8(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func serviceAccount(t *testing.T) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "herald-test",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "herald@herald-test.iam.gserviceaccount.com",
		"token_uri":      "http://127.0.0.1:1/token",
	})
	return b
}

// valid returns a usable configuration for each type, with its Secret.
func valid(t *testing.T) map[v1alpha1.ProviderType]senders.ProviderConfig {
	ref := &v1alpha1.LocalObjectReference{Name: "creds"}
	from := v1alpha1.EmailAddress{Email: "alerts@herald.example"}
	return map[v1alpha1.ProviderType]senders.ProviderConfig{
		v1alpha1.ProviderAPNs: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderAPNs, SecretRef: ref,
			APNs: &v1alpha1.APNsConfig{TeamID: "ABCDE12345", KeyID: "KEY1234567", Topic: "dev.herald.app", Environment: "development"}},
			Secret: map[string][]byte{"key.p8": p8(t)}},
		v1alpha1.ProviderFCM: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, SecretRef: ref,
			FCM: &v1alpha1.FCMConfig{ProjectID: "herald-test"}},
			Secret: map[string][]byte{"credentials.json": serviceAccount(t)}},
		v1alpha1.ProviderTwilio: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, SecretRef: ref,
			Twilio: &v1alpha1.TwilioConfig{From: "+14155550199"}},
			Secret: map[string][]byte{"accountSID": []byte(twiliofake.DefaultAccountSID), "authToken": []byte(twiliofake.DefaultAuthToken)}},
		v1alpha1.ProviderSendGrid: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSendGrid, SecretRef: ref,
			SendGrid: &v1alpha1.SendGridConfig{From: from}},
			Secret: map[string][]byte{"apiKey": []byte("SG.k.s")}},
		v1alpha1.ProviderSMTP: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSMTP, SecretRef: ref,
			SMTP: &v1alpha1.SMTPConfig{Host: "smtp.example.com", From: from}},
			Secret: map[string][]byte{"username": []byte("u"), "password": []byte("p")}},
		v1alpha1.ProviderWebhook: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, SecretRef: ref,
			Webhook: &v1alpha1.WebhookConfig{Format: "slack"}},
			Secret: map[string][]byte{"url": []byte("https://hooks.slack.example/services/T/B/X"), "hmacKey": []byte("k")}},
		v1alpha1.ProviderLog: {Spec: &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog,
			Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelEmail}}},
	}
}

func TestEveryTypeHasAConstructor(t *testing.T) {
	if got := registry.Types(); !slices.Equal(got, slices.Sorted(slices.Values(allTypes))) {
		t.Errorf("Types() = %v", got)
	}
	for typ, pc := range valid(t) {
		t.Run(string(typ), func(t *testing.T) {
			if err := registry.Validate(pc); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			s, err := registry.New(pc)
			if err != nil || s == nil {
				t.Fatalf("New: %v, %v", s, err)
			}
			_ = registry.Close(s)
		})
	}
}

func TestValidateReportsEachMissingKey(t *testing.T) {
	cases := []struct {
		typ    v1alpha1.ProviderType
		remove string
		keep   []string // optional keys that make remove required
	}{
		{v1alpha1.ProviderAPNs, "key.p8", nil},
		{v1alpha1.ProviderFCM, "credentials.json", nil},
		{v1alpha1.ProviderTwilio, "accountSID", nil},
		{v1alpha1.ProviderTwilio, "authToken", nil},
		{v1alpha1.ProviderSendGrid, "apiKey", nil},
		{v1alpha1.ProviderSMTP, "password", []string{"username"}},
		{v1alpha1.ProviderSMTP, "username", []string{"password"}},
		{v1alpha1.ProviderWebhook, "url", nil},
	}
	configs := valid(t)
	for _, tc := range cases {
		t.Run(string(tc.typ)+"/"+tc.remove, func(t *testing.T) {
			pc := configs[tc.typ]
			secret := map[string][]byte{}
			for k, v := range pc.Secret {
				if k != tc.remove {
					secret[k] = v
				}
			}
			pc.Secret = secret
			err := registry.Validate(pc)
			var ce *senders.ConfigError
			if !errors.As(err, &ce) || ce.Reason != v1alpha1.ReasonSecretKeyMissing || ce.Field != tc.remove {
				t.Fatalf("Validate = %v, want SecretKeyMissing for %q", err, tc.remove)
			}
			if _, err := registry.New(pc); !errors.As(err, &ce) {
				t.Errorf("New = %v", err)
			}
		})
	}
}

func TestUnknownType(t *testing.T) {
	var ce *senders.ConfigError
	if err := registry.Validate(senders.ProviderConfig{Spec: &v1alpha1.ChannelProviderSpec{Type: "pager"}}); !errors.As(err, &ce) || ce.Reason != v1alpha1.ReasonInvalidSpec {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := registry.New(senders.ProviderConfig{}); !errors.As(err, &ce) || ce.Reason != v1alpha1.ReasonInvalidSpec {
		t.Errorf("no spec: %v", err)
	}
}

func TestBuiltSenderSends(t *testing.T) {
	srv, err := twiliofake.New(twiliofake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	pc := valid(t)[v1alpha1.ProviderTwilio]
	pc.Spec.Endpoint = srv.URL()
	pc.Egress = egress.Loopback() // the fake listens here
	s, err := registry.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), senders.Address{Phone: "+14155550100"}, &senders.Message{ID: "x", SMS: &senders.SMS{Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Accepted()) != 1 {
		t.Errorf("not delivered")
	}
}

// Every sender dials through the egress policy, the SDKs' clients and
// FCM's token exchange included. Each is aimed at a loopback listener (by
// 127.0.0.1, 0.0.0.0, [::1] and a name that resolves to loopback): with the
// default policy the send fails permanently with EgressDenied naming the
// host, and the listener sees no connection; with loopback allowed the
// connection is made.
func TestEgressGuardEverySender(t *testing.T) {
	ln := sendertest.Listen(t)
	port := ln.Port
	aim := func(pc senders.ProviderConfig, host string) senders.ProviderConfig {
		hp := net.JoinHostPort(host, port)
		spec := pc.Spec.DeepCopy()
		secret := maps.Clone(pc.Secret)
		switch spec.Type {
		case v1alpha1.ProviderSMTP:
			p, _ := strconv.Atoi(port)
			spec.SMTP.Host, spec.SMTP.Port = host, int32(p)
		case v1alpha1.ProviderWebhook:
			secret["url"] = []byte("http://" + hp + "/hook")
		case v1alpha1.ProviderFCM:
			// The endpoint, and the token URI from the tenant's credentials.
			spec.Endpoint = "http://" + hp
			var sa map[string]string
			_ = json.Unmarshal(secret["credentials.json"], &sa)
			sa["token_uri"] = "http://" + hp + "/token"
			secret["credentials.json"], _ = json.Marshal(sa)
		case v1alpha1.ProviderAPNs:
			spec.Endpoint = "https://" + hp // HTTP/2 over TLS only; the dial comes first
		default:
			spec.Endpoint = "http://" + hp
		}
		pc.Spec, pc.Secret = spec, secret
		return pc
	}
	msg := &senders.Message{ID: "m", SMS: &senders.SMS{Text: "hi"}, Email: &senders.Email{Subject: "s", Text: "t"},
		Push: &senders.Push{Title: "t", Body: "b"}, Webhook: &senders.Webhook{Text: "t"}}
	to := senders.Address{Phone: "+14155550100", Email: "a@example.com", Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformAndroid, Token: "tok"}}
	ios := senders.Address{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformIOS, Token: strings.Repeat("ab", 32)}}
	for typ, pc := range valid(t) {
		if typ == v1alpha1.ProviderLog {
			continue // writes a file, dials nothing
		}
		to := to
		if typ == v1alpha1.ProviderAPNs {
			to = ios
		}
		// send builds the sender aimed at host under policy and returns
		// what Send said and how many connections reached the listener.
		send := func(t *testing.T, host string, policy *egress.Policy) (*senders.Error, int) {
			pc := aim(pc, host)
			pc.Egress = policy
			s, err := registry.New(pc)
			if err != nil {
				t.Fatal(err)
			}
			defer registry.Close(s)
			before := ln.Accepted()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = s.Send(ctx, to, msg)
			return senders.AsError(err), ln.Accepted() - before
		}
		for _, host := range ln.Hosts {
			t.Run(string(typ)+"/"+host, func(t *testing.T) {
				e, conns := send(t, host, &egress.Policy{})
				if e == nil || !e.Permanent || e.Reason != egress.ReasonEgressDenied || !strings.Contains(e.Error(), host) {
					t.Errorf("Send = %v, want permanent EgressDenied naming %s", e, host)
				}
				if conns != 0 {
					t.Errorf("the listener saw %d connections", conns)
				}
			})
		}
		t.Run(string(typ)+"/allowed", func(t *testing.T) {
			e, conns := send(t, "127.0.0.1", egress.Loopback())
			if e != nil && e.Reason == egress.ReasonEgressDenied {
				t.Errorf("Send with loopback allowed: %v", e)
			}
			if conns == 0 {
				t.Error("no connection reached the listener with loopback allowed")
			}
		})
	}
}
