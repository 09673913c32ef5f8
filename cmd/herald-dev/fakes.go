package main

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	fakeapns "github.com/herald-dev/herald/senders/fake/apns"
	fakefcm "github.com/herald-dev/herald/senders/fake/fcm"
	fakesendgrid "github.com/herald-dev/herald/senders/fake/sendgrid"
	fakesmtp "github.com/herald-dev/herald/senders/fake/smtp"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
)

// fakeProvider is a loopback provider and the ChannelProvider + Secret that
// point Herald at it, through the same endpoint and tls fields production uses.
type fakeProvider struct {
	spec   v1alpha1.ChannelProviderSpec
	secret map[string][]byte
	close  func()
}

// startFakes starts a loopback server for each real provider type and
// registers a non-default ChannelProvider "fake-<type>" in ns for each, so a
// Notification can try the real adapters with spec.providers.
func startFakes(ctx context.Context, c client.Client, ns string) (func(), error) {
	var closers []func()
	stop := func() {
		for _, f := range closers {
			f()
		}
	}
	fakes := map[string]func() (fakeProvider, error){
		"apns": func() (fakeProvider, error) {
			s, err := fakeapns.New(fakeapns.Options{NoRecord: true})
			if err != nil {
				return fakeProvider{}, err
			}
			p8, err := s.NewKey("HERALDTEAM", "HERALDKEY1")
			return fakeProvider{
				spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderAPNs, Endpoint: s.URL(),
					APNs: &v1alpha1.APNsConfig{TeamID: "HERALDTEAM", KeyID: "HERALDKEY1", Topic: "dev.herald.demo", Environment: "development"}},
				secret: map[string][]byte{"key.p8": p8, "ca.crt": s.CAPEM()}, close: s.Close,
			}, err
		},
		"fcm": func() (fakeProvider, error) {
			s, err := fakefcm.New(fakefcm.Options{ProjectID: "herald-dev", TLS: true, NoRecord: true})
			if err != nil {
				return fakeProvider{}, err
			}
			creds, err := s.NewCredentials("herald@herald-dev.iam.gserviceaccount.com")
			return fakeProvider{
				spec:   v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderFCM, Endpoint: s.URL(), FCM: &v1alpha1.FCMConfig{ProjectID: "herald-dev"}},
				secret: map[string][]byte{"credentials.json": creds, "ca.crt": s.CAPEM()}, close: s.Close,
			}, err
		},
		"twilio": func() (fakeProvider, error) {
			s, err := faketwilio.New(faketwilio.Options{})
			if err != nil {
				return fakeProvider{}, err
			}
			return fakeProvider{
				spec:   v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderTwilio, Endpoint: s.URL(), Twilio: &v1alpha1.TwilioConfig{From: "+15005550006"}},
				secret: map[string][]byte{"accountSID": []byte(s.AccountSID()), "authToken": []byte(s.AuthToken())}, close: func() { _ = s.Close() },
			}, nil
		},
		"sendgrid": func() (fakeProvider, error) {
			s, err := fakesendgrid.New(fakesendgrid.Options{})
			if err != nil {
				return fakeProvider{}, err
			}
			return fakeProvider{
				spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSendGrid, Endpoint: s.URL(),
					SendGrid: &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "herald@example.com", Name: "Herald"}}},
				secret: map[string][]byte{"apiKey": []byte(s.APIKey())}, close: func() { _ = s.Close() },
			}, nil
		},
		"smtp": func() (fakeProvider, error) {
			s, err := fakesmtp.New(fakesmtp.Options{Username: "herald", Password: "dev-password"})
			if err != nil {
				return fakeProvider{}, err
			}
			return fakeProvider{
				spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSMTP,
					SMTP: &v1alpha1.SMTPConfig{Host: s.Host(), Port: int32(s.Port()), From: v1alpha1.EmailAddress{Email: "herald@example.com"}}},
				secret: map[string][]byte{"username": []byte("herald"), "password": []byte("dev-password"), "ca.crt": s.CA()},
				close:  func() { _ = s.Close() },
			}, nil
		},
		"webhook": func() (fakeProvider, error) {
			s, err := fakewebhook.New(fakewebhook.Options{HMACKey: []byte("dev-hmac-key")})
			if err != nil {
				return fakeProvider{}, err
			}
			return fakeProvider{
				spec:   v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: s.URL(), Format: "slack"}},
				secret: map[string][]byte{"hmacKey": []byte("dev-hmac-key")}, close: func() { _ = s.Close() },
			}, nil
		},
	}
	var names []string
	for _, typ := range []string{"apns", "fcm", "twilio", "sendgrid", "smtp", "webhook"} {
		fp, err := fakes[typ]()
		if err != nil {
			stop()
			return nil, fmt.Errorf("starting the %s fake: %w", typ, err)
		}
		closers = append(closers, fp.close)
		name := "fake-" + typ
		if err := registerFake(ctx, c, ns, name, fp); err != nil {
			stop()
			return nil, err
		}
		names = append(names, name)
	}
	step("loopback providers in namespace %s: %s", ns, strings.Join(names, ", "))
	return stop, nil
}

func registerFake(ctx context.Context, c client.Client, ns, name string, fp fakeProvider) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, sec, func() error { sec.Data = fp.secret; return nil }); err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	spec := fp.spec
	spec.SecretRef = &v1alpha1.LocalObjectReference{Name: name}
	if _, ok := fp.secret["ca.crt"]; ok {
		spec.TLS = &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: name, Key: "ca.crt"}}
	}
	p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, p, func() error { p.Spec = spec; return nil }); err != nil {
		return fmt.Errorf("provider %s: %w", name, err)
	}
	return nil
}
