package apns_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/apns"
	"github.com/herald-dev/herald/senders/fake"
	fakeapns "github.com/herald-dev/herald/senders/fake/apns"
	"github.com/herald-dev/herald/senders/sendertest"
)

const (
	teamID = "TEAM123456"
	keyID  = "KEY1234567"
	topic  = "dev.herald.app"
)

var deviceToken = strings.Repeat("ab01", 16) // 64 hex characters

// env is a fake APNs and the pieces of a provider pointing at it.
type env struct {
	srv *fakeapns.Server
	p8  []byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := fakeapns.New(fakeapns.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	p8, err := srv.NewKey(teamID, keyID)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, p8: p8}
}

// tokenConfig is the ProviderConfig of a token-auth provider aimed at the fake
// through spec.endpoint and spec.tls's CA, as a cluster would configure it.
func (e *env) tokenConfig() senders.ProviderConfig {
	return senders.ProviderConfig{
		Name: "ChannelProvider/apns",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:     v1alpha1.ProviderAPNs,
			Endpoint: e.srv.URL(),
			Timeout:  &metav1.Duration{Duration: 2 * time.Second},
			APNs:     &v1alpha1.APNsConfig{TeamID: teamID, KeyID: keyID, Topic: topic, Environment: "development"},
		},
		Secret: map[string][]byte{apns.KeyP8: e.p8},
		CA:     e.srv.CAPEM(),
	}
}

func (e *env) sender(t *testing.T, pc senders.ProviderConfig) *apns.Sender {
	return sendertest.Build(t, apns.ConfigFrom, apns.New, pc)
}

func ios(tok string) senders.Address {
	return senders.Address{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformIOS, Token: tok}}
}

func message() *senders.Message {
	badge := int32(3)
	return &senders.Message{
		ID:         "8F0C2F4A-6E2B-4C1D-9A37-5B6E7D8C9A0B",
		Priority:   v1alpha1.PriorityNormal,
		Expiration: time.Unix(1900000000, 0),
		Push: &senders.Push{
			Title: "Build 1234 failed", Body: "main <broken> & red",
			Data:  map[string]string{"build": "1234"},
			Sound: "default", Badge: &badge,
		},
	}
}

func TestSendTokenAuth(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	s := e.sender(t, e.tokenConfig())

	res, err := s.Send(context.Background(), ios(deviceToken), message())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ProviderMessageID).To(Equal("8f0c2f4a-6e2b-4c1d-9a37-5b6e7d8c9a0b"))

	reqs := e.srv.Received.All()
	g.Expect(reqs).To(HaveLen(1))
	r := reqs[0]
	g.Expect(r.Token).To(Equal(deviceToken))
	g.Expect(r.Auth).To(Equal("token"))
	g.Expect(r.Status).To(Equal(200))
	g.Expect(r.Header.Get("apns-topic")).To(Equal(topic))
	g.Expect(r.Header.Get("apns-push-type")).To(Equal("alert"))
	g.Expect(r.Header.Get("apns-priority")).To(Equal("10"))
	g.Expect(r.Header.Get("apns-expiration")).To(Equal("1900000000"))
	g.Expect(r.Header.Get("apns-collapse-id")).To(Equal("8F0C2F4A-6E2B-4C1D-9A37-5B6E7D8C9A0B"))
	g.Expect(r.Header.Get("apns-id")).To(Equal("8f0c2f4a-6e2b-4c1d-9a37-5b6e7d8c9a0b"))
	g.Expect(r.Header.Get("authorization")).To(HavePrefix("bearer "))
	g.Expect(r.Payload).To(Equal(map[string]any{
		"aps": map[string]any{
			"alert": map[string]any{"title": "Build 1234 failed", "body": "main <broken> & red"},
			"sound": "default",
			"badge": float64(3),
		},
		"build": "1234",
	}))
}

func TestSendHeaders(t *testing.T) {
	e := newEnv(t)
	s := e.sender(t, e.tokenConfig())
	long := strings.Repeat("x", 70) + "é"
	tests := []struct {
		name                     string
		edit                     func(*senders.Message)
		priority, collapse, apns string
		expiration               string
	}{
		{name: "collapse key wins", edit: func(m *senders.Message) { m.Push.CollapseKey = "build-1234" },
			priority: "10", collapse: "build-1234", apns: "8f0c2f4a-6e2b-4c1d-9a37-5b6e7d8c9a0b", expiration: "1900000000"},
		{name: "low priority", edit: func(m *senders.Message) { m.Priority = v1alpha1.PriorityLow },
			priority: "5", collapse: "8F0C2F4A-6E2B-4C1D-9A37-5B6E7D8C9A0B", apns: "8f0c2f4a-6e2b-4c1d-9a37-5b6e7d8c9a0b", expiration: "1900000000"},
		{name: "critical is immediate", edit: func(m *senders.Message) { m.Priority = v1alpha1.PriorityCritical },
			priority: "10", collapse: "8F0C2F4A-6E2B-4C1D-9A37-5B6E7D8C9A0B", apns: "8f0c2f4a-6e2b-4c1d-9a37-5b6e7d8c9a0b", expiration: "1900000000"},
		{name: "long non-uuid id: collapse id cut to 64 bytes, apns-id left to Apple",
			edit:     func(m *senders.Message) { m.ID = long; m.Expiration = time.Time{} },
			priority: "10", collapse: long[:64], apns: "", expiration: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e.srv.Received.Reset()
			m := message()
			tt.edit(m)
			res, err := s.Send(context.Background(), ios(deviceToken), m)
			g.Expect(err).NotTo(HaveOccurred())
			r := e.srv.Received.All()[0]
			g.Expect(r.Header.Get("apns-priority")).To(Equal(tt.priority))
			g.Expect(r.Header.Get("apns-collapse-id")).To(Equal(tt.collapse))
			g.Expect(r.Header.Get("apns-id")).To(Equal(tt.apns))
			g.Expect(r.Header.Get("apns-expiration")).To(Equal(tt.expiration))
			g.Expect(res.ProviderMessageID).To(HaveLen(36), "Apple's (or our) apns-id")
		})
	}
}

func TestSendCertificateAuth(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	crt, key, err := e.srv.NewClientCert(topic)
	g.Expect(err).NotTo(HaveOccurred())
	pc := e.tokenConfig()
	pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", ""
	pc.Secret = map[string][]byte{apns.KeyCert: crt, apns.KeyKey: key}
	s := e.sender(t, pc)

	_, err = s.Send(context.Background(), ios(deviceToken), message())
	g.Expect(err).NotTo(HaveOccurred())
	r := e.srv.Received.All()[0]
	g.Expect(r.Auth).To(Equal("certificate"))
	g.Expect(r.Header.Get("authorization")).To(BeEmpty())

	// A certificate Apple did not issue is refused: permanent.
	other := newEnv(t)
	crt, key, err = other.srv.NewClientCert(topic)
	g.Expect(err).NotTo(HaveOccurred())
	pc.Secret = map[string][]byte{apns.KeyCert: crt, apns.KeyKey: key}
	s = e.sender(t, pc)
	_, err = s.Send(context.Background(), ios(deviceToken), message())
	se := asError(t, err)
	g.Expect(se.Permanent).To(BeTrue(), se.Error())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.Code).To(Equal("BadCertificate"))
}

func asError(t *testing.T, err error) *senders.Error {
	t.Helper()
	var se *senders.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *senders.Error", err, err)
	}
	if strings.Contains(se.Error(), deviceToken) {
		t.Fatalf("error quotes the full device token: %v", se)
	}
	return se
}

func TestSendErrors(t *testing.T) {
	e := newEnv(t)
	s := e.sender(t, e.tokenConfig())
	e.srv.Unregister(strings.Repeat("dead", 16))

	tests := []struct {
		name       string
		fault      fake.Fault
		token      string
		reason     string
		permanent  bool
		status     int
		code       string
		retryAfter time.Duration
	}{
		// What the fake itself detects, as Apple would.
		{name: "short token", token: strings.Repeat("ab", 16), reason: senders.ReasonDeviceUnregistered, permanent: true, status: 400, code: "BadDeviceToken"},
		{name: "unregistered device", token: strings.Repeat("dead", 16), reason: senders.ReasonDeviceUnregistered, permanent: true, status: 410, code: "Unregistered"},
		// Apple's reasons, scripted.
		{name: "BadDeviceToken", fault: fake.Fault{Reason: "BadDeviceToken"}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 400, code: "BadDeviceToken"},
		{name: "Unregistered", fault: fake.Fault{Status: 410}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 410, code: "Unregistered"},
		{name: "ExpiredToken", fault: fake.Fault{Reason: "ExpiredToken"}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 410, code: "ExpiredToken"},
		{name: "DeviceTokenNotForTopic", fault: fake.Fault{Reason: "DeviceTokenNotForTopic"}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 400, code: "DeviceTokenNotForTopic"},
		{name: "InvalidProviderToken", fault: fake.Fault{Reason: "InvalidProviderToken"}, reason: senders.ReasonAuthFailed, permanent: true, status: 403, code: "InvalidProviderToken"},
		{name: "MissingProviderToken", fault: fake.Fault{Reason: "MissingProviderToken"}, reason: senders.ReasonAuthFailed, permanent: true, status: 403, code: "MissingProviderToken"},
		{name: "BadCertificate", fault: fake.Fault{Reason: "BadCertificate"}, reason: senders.ReasonAuthFailed, permanent: true, status: 403, code: "BadCertificate"},
		{name: "BadCertificateEnvironment", fault: fake.Fault{Reason: "BadCertificateEnvironment"}, reason: senders.ReasonAuthFailed, permanent: true, status: 403, code: "BadCertificateEnvironment"},
		{name: "ExpiredProviderToken retries with a new token", fault: fake.Fault{Reason: "ExpiredProviderToken"}, reason: senders.ReasonAuthFailed, permanent: false, status: 403, code: "ExpiredProviderToken"},
		{name: "PayloadTooLarge", fault: fake.Fault{Reason: "PayloadTooLarge"}, reason: senders.ReasonPayloadRejected, permanent: true, status: 413, code: "PayloadTooLarge"},
		{name: "BadCollapseId", fault: fake.Fault{Reason: "BadCollapseId"}, reason: senders.ReasonPayloadRejected, permanent: true, status: 400, code: "BadCollapseId"},
		{name: "BadTopic", fault: fake.Fault{Reason: "BadTopic"}, reason: senders.ReasonRejected, permanent: true, status: 400, code: "BadTopic"},
		{name: "TopicDisallowed", fault: fake.Fault{Reason: "TopicDisallowed"}, reason: senders.ReasonRejected, permanent: true, status: 400, code: "TopicDisallowed"},
		{name: "unknown 4xx", fault: fake.Fault{Status: 418, Reason: "Teapot"}, reason: senders.ReasonRejected, permanent: true, status: 418, code: "Teapot"},
		{name: "TooManyRequests with Retry-After", fault: fake.Fault{Reason: "TooManyRequests", RetryAfter: 30 * time.Second}, reason: senders.ReasonRateLimited, status: 429, code: "TooManyRequests", retryAfter: 30 * time.Second},
		{name: "TooManyProviderTokenUpdates", fault: fake.Fault{Reason: "TooManyProviderTokenUpdates"}, reason: senders.ReasonRateLimited, status: 429, code: "TooManyProviderTokenUpdates"},
		{name: "InternalServerError", fault: fake.Fault{Status: 500}, reason: senders.ReasonUnavailable, status: 500, code: "InternalServerError"},
		{name: "ServiceUnavailable with Retry-After", fault: fake.Fault{Reason: "ServiceUnavailable", RetryAfter: 2 * time.Second}, reason: senders.ReasonUnavailable, status: 503, code: "ServiceUnavailable", retryAfter: 2 * time.Second},
		{name: "Shutdown", fault: fake.Fault{Reason: "Shutdown"}, reason: senders.ReasonUnavailable, status: 503, code: "Shutdown"},
		{name: "timeout", fault: fake.Fault{Latency: 5 * time.Second}, reason: senders.ReasonTimeout},
		{name: "dropped stream", fault: fake.Fault{Drop: true}, reason: senders.ReasonNetwork},
		{name: "proxy page", fault: fake.Fault{Status: 502, Body: fake.HTMLError(502), RetryAfter: 5 * time.Second}, reason: senders.ReasonUnavailable, status: 502, retryAfter: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			if !tt.fault.OK() || tt.fault.Latency > 0 {
				e.srv.Script.Push(tt.fault)
			}
			tok := deviceToken
			if tt.token != "" {
				tok = tt.token
			}
			start := time.Now()
			_, err := s.Send(context.Background(), ios(tok), message())
			se := asError(t, err)
			g.Expect(se.Reason).To(Equal(tt.reason), se.Error())
			g.Expect(se.Permanent).To(Equal(tt.permanent))
			g.Expect(se.StatusCode).To(Equal(tt.status))
			g.Expect(se.Code).To(Equal(tt.code))
			g.Expect(se.RetryAfter).To(Equal(tt.retryAfter))
			g.Expect(se.Error()).NotTo(ContainSubstring(tok))
			g.Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second), "bounded by the 2s timeout")
		})
	}
	// The sender still works after every failure, with a fresh token after ExpiredProviderToken.
	_, err := s.Send(context.Background(), ios(deviceToken), message())
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

func TestSendRejectsLocally(t *testing.T) {
	e := newEnv(t)
	s := e.sender(t, e.tokenConfig())
	tests := []struct {
		name   string
		to     senders.Address
		msg    *senders.Message
		reason string
	}{
		{name: "no device", to: senders.Address{Email: "a@example.com"}, msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "android device", to: senders.Address{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformAndroid, Token: deviceToken}}, msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "web device", to: senders.Address{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformWeb, Token: deviceToken}}, msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "token with a path in it", to: ios("../../x" + deviceToken), msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "no push content", to: ios(deviceToken), msg: &senders.Message{ID: "x"}, reason: senders.ReasonPayloadRejected},
		{name: "nothing to show", to: ios(deviceToken), msg: &senders.Message{ID: "x", Push: &senders.Push{Data: map[string]string{"k": "v"}}}, reason: senders.ReasonPayloadRejected},
		{name: "reserved aps key", to: ios(deviceToken), msg: &senders.Message{ID: "x", Push: &senders.Push{Title: "t", Data: map[string]string{"aps": "v"}}}, reason: senders.ReasonPayloadRejected},
		{name: "too large", to: ios(deviceToken), msg: &senders.Message{ID: "x", Push: &senders.Push{Title: "t", Body: strings.Repeat("b", 5000)}}, reason: senders.ReasonPayloadRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := s.Send(context.Background(), tt.to, tt.msg)
			se := asError(t, err)
			g.Expect(se.Permanent).To(BeTrue())
			g.Expect(se.Reason).To(Equal(tt.reason))
		})
	}
	NewWithT(t).Expect(e.srv.Received.Len()).To(BeZero(), "nothing reached the network")
}

func TestSendUntrustedServer(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	pc := e.tokenConfig()
	pc.CA = nil // the fake's CA is not in the system roots
	s := e.sender(t, pc)
	_, err := s.Send(context.Background(), ios(deviceToken), message())
	se := asError(t, err)
	g.Expect(se.Permanent).To(BeTrue())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.Code).To(Equal("TLS"))
	g.Expect(e.srv.Received.Len()).To(BeZero())
}

func TestSendUnknownKey(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	other := newEnv(t) // a key Apple (this fake) never issued
	pc := e.tokenConfig()
	pc.Secret[apns.KeyP8] = other.p8
	s := e.sender(t, pc)
	_, err := s.Send(context.Background(), ios(deviceToken), message())
	se := asError(t, err)
	g.Expect(se.Permanent).To(BeTrue())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.Code).To(Equal("InvalidProviderToken"))
}

func TestSendConcurrent(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	s := e.sender(t, e.tokenConfig())
	e.srv.Script.SetRates(fake.Rate{P: 0.2, Fault: fake.Fault{Reason: "TooManyRequests"}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, limited := 0, 0
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 8 {
				m := message()
				m.ID = "msg-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
				_, err := s.Send(context.Background(), ios(deviceToken), m)
				mu.Lock()
				if err == nil {
					ok++
				} else if asError(t, err).Reason == senders.ReasonRateLimited {
					limited++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	g.Expect(ok + limited).To(Equal(256))
	g.Expect(e.srv.Received.Len()).To(Equal(256))
}

func TestConfigFrom(t *testing.T) {
	e := newEnv(t)
	crt, key, err := e.srv.NewClientCert(topic)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := e.srv.NewClientCert(topic)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1DER, _ := x509.MarshalECPrivateKey(p256)
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})

	tests := []struct {
		name   string
		edit   func(pc *senders.ProviderConfig)
		reason string
		field  string
	}{
		{name: "no apns block", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs = nil }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns"},
		{name: "no topic", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs.Topic = " " }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns.topic"},
		{name: "bad environment", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs.Environment = "staging" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns.environment"},
		{name: "plain http endpoint", edit: func(pc *senders.ProviderConfig) { pc.Spec.Endpoint = "http://127.0.0.1:1" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.endpoint"},
		{name: "bad team id", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs.TeamID = "team" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns.teamID"},
		{name: "key id without team id", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs.TeamID = "" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns.teamID"},
		{name: "missing key.p8", edit: func(pc *senders.ProviderConfig) { delete(pc.Secret, apns.KeyP8) }, reason: v1alpha1.ReasonSecretKeyMissing, field: "key.p8"},
		{name: "empty key.p8", edit: func(pc *senders.ProviderConfig) { pc.Secret[apns.KeyP8] = nil }, reason: v1alpha1.ReasonSecretKeyMissing, field: "key.p8"},
		{name: "key.p8 not PEM", edit: func(pc *senders.ProviderConfig) { pc.Secret[apns.KeyP8] = []byte("s3cr3t-not-pem") }, reason: v1alpha1.ReasonInvalidSecret, field: "key.p8"},
		{name: "key.p8 in SEC1 form", edit: func(pc *senders.ProviderConfig) { pc.Secret[apns.KeyP8] = sec1 }, reason: v1alpha1.ReasonInvalidSecret, field: "key.p8"},
		{name: "key.p8 is RSA", edit: func(pc *senders.ProviderConfig) { pc.Secret[apns.KeyP8] = pkcs8(rsaKey) }, reason: v1alpha1.ReasonInvalidSecret, field: "key.p8"},
		{name: "key.p8 is P-384", edit: func(pc *senders.ProviderConfig) { pc.Secret[apns.KeyP8] = pkcs8(p384) }, reason: v1alpha1.ReasonInvalidSecret, field: "key.p8"},
		{name: "key.p8 without team and key id", edit: func(pc *senders.ProviderConfig) { pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", "" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.apns.teamID"},
		{name: "no credentials at all", edit: func(pc *senders.ProviderConfig) {
			pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", ""
			pc.Secret = nil
		}, reason: v1alpha1.ReasonSecretKeyMissing, field: "tls.crt"},
		{name: "certificate without key", edit: func(pc *senders.ProviderConfig) {
			pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", ""
			pc.Secret = map[string][]byte{apns.KeyCert: crt}
		}, reason: v1alpha1.ReasonSecretKeyMissing, field: "tls.key"},
		{name: "certificate garbage", edit: func(pc *senders.ProviderConfig) {
			pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", ""
			pc.Secret = map[string][]byte{apns.KeyCert: []byte("garbage"), apns.KeyKey: key}
		}, reason: v1alpha1.ReasonInvalidSecret, field: "tls.crt"},
		{name: "certificate and key do not match", edit: func(pc *senders.ProviderConfig) {
			pc.Spec.APNs.TeamID, pc.Spec.APNs.KeyID = "", ""
			pc.Secret = map[string][]byte{apns.KeyCert: crt, apns.KeyKey: otherKey}
		}, reason: v1alpha1.ReasonInvalidSecret, field: "tls.key"},
		{name: "bad CA", edit: func(pc *senders.ProviderConfig) { pc.CA = []byte("nope") }, reason: v1alpha1.ReasonInvalidSecret, field: "tls.caSecretRef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			pc := e.tokenConfig()
			tt.edit(&pc)
			_, err := apns.ConfigFrom(pc)
			var ce *senders.ConfigError
			g.Expect(errors.As(err, &ce)).To(BeTrue(), "got %v", err)
			g.Expect(ce.Reason).To(Equal(tt.reason))
			g.Expect(ce.Field).To(Equal(tt.field))
			g.Expect(err.Error()).NotTo(Or(ContainSubstring("s3cr3t"), ContainSubstring("PRIVATE KEY")))
		})
	}

	t.Run("defaults", func(t *testing.T) {
		g := NewWithT(t)
		pc := e.tokenConfig()
		pc.Spec.Endpoint, pc.Spec.Timeout, pc.Spec.APNs.Environment = "", nil, ""
		cfg, err := apns.ConfigFrom(pc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Host).To(Equal("https://api.push.apple.com"))
		g.Expect(cfg.Timeout).To(Equal(senders.DefaultTimeout))
		g.Expect(cfg.String()).NotTo(ContainSubstring("PRIVATE"))
		pc.Spec.APNs.Environment = "development"
		cfg, _ = apns.ConfigFrom(pc)
		g.Expect(cfg.Host).To(Equal("https://api.sandbox.push.apple.com"))
	})
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	g := NewWithT(t)
	_, err := apns.New(apns.Config{Host: "https://api.push.apple.com", Topic: topic, TeamID: teamID, KeyID: keyID})
	g.Expect(err).To(HaveOccurred(), "no key: apns2 would send an empty bearer")
	_, err = apns.New(apns.Config{Host: "https://api.push.apple.com", TeamID: teamID, KeyID: keyID})
	g.Expect(err).To(HaveOccurred())
}
