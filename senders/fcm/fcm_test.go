package fcm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
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
	"github.com/herald-dev/herald/senders/fake"
	fakefcm "github.com/herald-dev/herald/senders/fake/fcm"
	"github.com/herald-dev/herald/senders/fcm"
	"github.com/herald-dev/herald/senders/sendertest"
)

const project = "herald-test"

var regToken = "fcmtoken:" + strings.Repeat("APA91bH-x_", 15)

type env struct {
	srv   *fakefcm.Server
	creds []byte
}

func newEnv(t *testing.T, opts fakefcm.Options) *env {
	t.Helper()
	if opts.ProjectID == "" {
		opts.ProjectID = project
	}
	srv, err := fakefcm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	creds, err := srv.NewCredentials("herald@" + project + ".iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, creds: creds}
}

func (e *env) config() senders.ProviderConfig {
	return senders.ProviderConfig{
		Name: "ChannelProvider/fcm",
		Spec: &v1alpha1.ChannelProviderSpec{
			Type:     v1alpha1.ProviderFCM,
			Endpoint: e.srv.URL(),
			Timeout:  &metav1.Duration{Duration: 2 * time.Second},
			FCM:      &v1alpha1.FCMConfig{ProjectID: project},
		},
		Secret: map[string][]byte{fcm.KeyCredentials: e.creds},
		CA:     e.srv.CAPEM(),
	}
}

func (e *env) sender(t *testing.T, pc senders.ProviderConfig) *fcm.Sender {
	return sendertest.Build(t, fcm.ConfigFrom, fcm.New, pc)
}

func device(p v1alpha1.Platform, tok string) senders.Address {
	return senders.Address{Device: &v1alpha1.DeviceTarget{Platform: p, Token: tok}}
}

func message() *senders.Message {
	badge := int32(2)
	return &senders.Message{
		ID:         "ntf-uid-1/alice/push",
		Priority:   v1alpha1.PriorityHigh,
		Expiration: time.Now().Add(time.Hour),
		Push: &senders.Push{
			Title: "Build 1234 failed", Body: "main is red",
			Data:  map[string]string{"build": "1234"},
			Sound: "default", Badge: &badge, CollapseKey: "build-1234",
		},
	}
}

func asError(t *testing.T, err error) *senders.Error {
	t.Helper()
	var se *senders.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *senders.Error", err, err)
	}
	if strings.Contains(se.Error(), regToken) {
		t.Fatalf("error quotes the full registration token: %v", se)
	}
	return se
}

func TestSendAndroid(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, fakefcm.Options{})
	s := e.sender(t, e.config())

	res, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ProviderMessageID).To(HavePrefix("projects/" + project + "/messages/"))

	reqs := e.srv.Received.All()
	g.Expect(reqs).To(HaveLen(1))
	r := reqs[0]
	g.Expect(r.ProjectID).To(Equal(project))
	g.Expect(r.ClientEmail).To(Equal("herald@" + project + ".iam.gserviceaccount.com"))
	g.Expect(r.Header.Get("Authorization")).To(HavePrefix("Bearer ya29."))
	g.Expect(r.Token).To(Equal(regToken))
	g.Expect(r.Message).To(HaveKeyWithValue("notification", map[string]any{"title": "Build 1234 failed", "body": "main is red"}))
	g.Expect(r.Message).To(HaveKeyWithValue("data", map[string]any{"build": "1234"}))
	android := r.Message["android"].(map[string]any)
	g.Expect(android).To(HaveKeyWithValue("collapse_key", "build-1234"))
	g.Expect(android).To(HaveKeyWithValue("priority", "high"))
	g.Expect(android["ttl"]).To(MatchRegexp(`^35\d\ds$`))
	g.Expect(android["notification"]).To(HaveKeyWithValue("sound", "default"))
	g.Expect(r.Message).NotTo(HaveKey("apns"))
	g.Expect(r.Message).NotTo(HaveKey("webpush"))

	// The access token is reused.
	_, err = s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.srv.TokenRequests()).To(Equal(int64(1)))
}

func TestSendPlatforms(t *testing.T) {
	e := newEnv(t, fakefcm.Options{})
	s := e.sender(t, e.config())
	tests := []struct {
		name     string
		platform v1alpha1.Platform
		edit     func(*senders.Message)
		check    func(g Gomega, m map[string]any)
	}{
		{name: "android normal priority, no collapse key", platform: v1alpha1.PlatformAndroid,
			edit: func(m *senders.Message) { m.Priority = v1alpha1.PriorityNormal; m.Push.CollapseKey = "" },
			check: func(g Gomega, m map[string]any) {
				a := m["android"].(map[string]any)
				g.Expect(a).To(HaveKeyWithValue("priority", "normal"))
				g.Expect(a).NotTo(HaveKey("collapse_key"))
			}},
		{name: "ios through FCM", platform: v1alpha1.PlatformIOS, edit: func(*senders.Message) {},
			check: func(g Gomega, m map[string]any) {
				a := m["apns"].(map[string]any)
				h := a["headers"].(map[string]any)
				g.Expect(h).To(HaveKeyWithValue("apns-priority", "10"))
				g.Expect(h).To(HaveKeyWithValue("apns-collapse-id", "build-1234"))
				g.Expect(h).To(HaveKey("apns-expiration"))
				aps := a["payload"].(map[string]any)["aps"].(map[string]any)
				g.Expect(aps).To(HaveKeyWithValue("sound", "default"))
				g.Expect(aps).To(HaveKeyWithValue("badge", float64(2)))
			}},
		{name: "ios low priority falls back to the message id", platform: v1alpha1.PlatformIOS,
			edit: func(m *senders.Message) { m.Priority = v1alpha1.PriorityLow; m.Push.CollapseKey = "" },
			check: func(g Gomega, m map[string]any) {
				h := m["apns"].(map[string]any)["headers"].(map[string]any)
				g.Expect(h).To(HaveKeyWithValue("apns-priority", "5"))
				g.Expect(h).To(HaveKeyWithValue("apns-collapse-id", "ntf-uid-1/alice/push"))
			}},
		{name: "web", platform: v1alpha1.PlatformWeb, edit: func(*senders.Message) {},
			check: func(g Gomega, m map[string]any) {
				h := m["webpush"].(map[string]any)["headers"].(map[string]any)
				g.Expect(h).To(HaveKeyWithValue("Urgency", "high"))
				g.Expect(h).To(HaveKeyWithValue("Topic", "build-1234"))
				g.Expect(h["TTL"]).To(MatchRegexp(`^35\d\d$`))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e.srv.Received.Reset()
			m := message()
			tt.edit(m)
			_, err := s.Send(context.Background(), device(tt.platform, regToken), m)
			g.Expect(err).NotTo(HaveOccurred())
			tt.check(g, e.srv.Received.All()[0].Message)
		})
	}
}

func TestSendOverTLS(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, fakefcm.Options{TLS: true})
	s := e.sender(t, e.config())
	_, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	g.Expect(err).NotTo(HaveOccurred())

	pc := e.config()
	pc.CA = nil
	s = e.sender(t, pc)
	_, err = s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	se := asError(t, err)
	g.Expect(se.Permanent).To(BeTrue())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.Code).To(Equal("TLS"))
}

func TestSendErrors(t *testing.T) {
	e := newEnv(t, fakefcm.Options{})
	s := e.sender(t, e.config())
	dead := "dead:" + strings.Repeat("x", 40)
	e.srv.Unregister(dead)

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
		{name: "unregistered device", token: dead, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 404, code: "UNREGISTERED"},
		{name: "malformed token", token: "short", reason: senders.ReasonInvalidAddress, permanent: true, status: 400, code: "INVALID_ARGUMENT"},
		{name: "UNREGISTERED", fault: fake.Fault{Reason: "UNREGISTERED"}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 404, code: "UNREGISTERED"},
		{name: "SENDER_ID_MISMATCH", fault: fake.Fault{Reason: "SENDER_ID_MISMATCH"}, reason: senders.ReasonDeviceUnregistered, permanent: true, status: 403, code: "SENDER_ID_MISMATCH"},
		{name: "INVALID_ARGUMENT", fault: fake.Fault{Reason: "INVALID_ARGUMENT"}, reason: senders.ReasonPayloadRejected, permanent: true, status: 400, code: "INVALID_ARGUMENT"},
		{name: "THIRD_PARTY_AUTH_ERROR", fault: fake.Fault{Reason: "THIRD_PARTY_AUTH_ERROR"}, reason: senders.ReasonAuthFailed, permanent: true, status: 401, code: "THIRD_PARTY_AUTH_ERROR"},
		{name: "401 UNAUTHENTICATED", fault: fake.Fault{Status: 401}, reason: senders.ReasonAuthFailed, permanent: true, status: 401, code: "UNAUTHENTICATED"},
		{name: "403 PERMISSION_DENIED", fault: fake.Fault{Status: 403}, reason: senders.ReasonAuthFailed, permanent: true, status: 403, code: "PERMISSION_DENIED"},
		{name: "409 other 4xx", fault: fake.Fault{Status: 409}, reason: senders.ReasonRejected, permanent: true, status: 409, code: "ALREADY_EXISTS"},
		{name: "QUOTA_EXCEEDED with Retry-After", fault: fake.Fault{Reason: "QUOTA_EXCEEDED", RetryAfter: 60 * time.Second}, reason: senders.ReasonRateLimited, status: 429, code: "QUOTA_EXCEEDED", retryAfter: 60 * time.Second},
		{name: "INTERNAL", fault: fake.Fault{Reason: "INTERNAL"}, reason: senders.ReasonUnavailable, status: 500, code: "INTERNAL"},
		{name: "UNAVAILABLE with Retry-After, not retried by the SDK", fault: fake.Fault{Reason: "UNAVAILABLE", RetryAfter: 30 * time.Second}, reason: senders.ReasonUnavailable, status: 503, code: "UNAVAILABLE", retryAfter: 30 * time.Second},
		{name: "502 from a proxy", fault: fake.Fault{Status: 502}, reason: senders.ReasonUnavailable, status: 502},
		{name: "timeout", fault: fake.Fault{Latency: 5 * time.Second}, reason: senders.ReasonTimeout},
		{name: "dropped connection, not retried by the SDK", fault: fake.Fault{Drop: true}, reason: senders.ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e.srv.Received.Reset()
			if !tt.fault.OK() || tt.fault.Latency > 0 {
				e.srv.Script.Push(tt.fault)
			}
			tok := regToken
			if tt.token != "" {
				tok = tt.token
			}
			start := time.Now()
			_, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, tok), message())
			se := asError(t, err)
			g.Expect(se.Reason).To(Equal(tt.reason), se.Error())
			g.Expect(se.Permanent).To(Equal(tt.permanent))
			g.Expect(se.StatusCode).To(Equal(tt.status))
			g.Expect(se.Code).To(Equal(tt.code))
			g.Expect(se.RetryAfter).To(Equal(tt.retryAfter))
			g.Expect(se.Error()).NotTo(ContainSubstring(tok))
			g.Expect(time.Since(start)).To(BeNumerically("<", 3*time.Second), "bounded by the 2s timeout")
			if tt.fault.Latency == 0 {
				g.Expect(e.srv.Received.Len()).To(BeNumerically("<=", 1), "one attempt per Send")
			}
		})
	}
	_, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

func TestSendAuthErrors(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, fakefcm.Options{})
	other := newEnv(t, fakefcm.Options{})

	// A service account the token endpoint does not know: invalid_grant.
	pc := e.config()
	var sa map[string]string
	g.Expect(json.Unmarshal(other.creds, &sa)).To(Succeed())
	sa["token_uri"] = e.srv.TokenURL()
	pc.Secret[fcm.KeyCredentials], _ = json.Marshal(sa)
	s := e.sender(t, pc)
	_, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	se := asError(t, err)
	g.Expect(se.Permanent).To(BeTrue())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.Code).To(Equal("invalid_grant"))
	g.Expect(e.srv.Received.Len()).To(BeZero())
	g.Expect(e.srv.TokenRequests()).To(Equal(int64(1)), "the SDK did not retry the failed exchange")

	// Another project: 403 PERMISSION_DENIED.
	pc = e.config()
	pc.Spec.FCM.ProjectID = "someone-else"
	s = e.sender(t, pc)
	_, err = s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), message())
	se = asError(t, err)
	g.Expect(se.Permanent).To(BeTrue())
	g.Expect(se.Reason).To(Equal(senders.ReasonAuthFailed))
	g.Expect(se.StatusCode).To(Equal(403))
}

func TestSendRejectsLocally(t *testing.T) {
	e := newEnv(t, fakefcm.Options{})
	s := e.sender(t, e.config())
	tests := []struct {
		name   string
		to     senders.Address
		msg    *senders.Message
		reason string
	}{
		{name: "no device", to: senders.Address{Phone: "+15550100"}, msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "unknown platform", to: device("blackberry", regToken), msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "token with a newline", to: device(v1alpha1.PlatformAndroid, regToken+"\n"), msg: message(), reason: senders.ReasonInvalidAddress},
		{name: "no push", to: device(v1alpha1.PlatformAndroid, regToken), msg: &senders.Message{ID: "x"}, reason: senders.ReasonPayloadRejected},
		{name: "empty push", to: device(v1alpha1.PlatformAndroid, regToken), msg: &senders.Message{ID: "x", Push: &senders.Push{}}, reason: senders.ReasonPayloadRejected},
		{name: "reserved data key", to: device(v1alpha1.PlatformAndroid, regToken), msg: &senders.Message{ID: "x", Push: &senders.Push{Title: "t", Data: map[string]string{"google.x": "y"}}}, reason: senders.ReasonPayloadRejected},
		{name: "too large", to: device(v1alpha1.PlatformWeb, regToken), msg: &senders.Message{ID: "x", Push: &senders.Push{Title: "t", Body: strings.Repeat("b", 4100)}}, reason: senders.ReasonPayloadRejected},
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

func TestSendConcurrent(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t, fakefcm.Options{})
	s := e.sender(t, e.config())
	e.srv.Script.SetRates(fake.Rate{P: 0.2, Fault: fake.Fault{Reason: "QUOTA_EXCEEDED"}})
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
				_, err := s.Send(context.Background(), device(v1alpha1.PlatformAndroid, regToken), m)
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
	e := newEnv(t, fakefcm.Options{})
	var good map[string]string
	if err := json.Unmarshal(e.creds, &good); err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	with := func(k, v string) []byte {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name   string
		edit   func(pc *senders.ProviderConfig)
		reason string
		field  string
	}{
		{name: "no fcm block", edit: func(pc *senders.ProviderConfig) { pc.Spec.FCM = nil }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.fcm"},
		{name: "no project", edit: func(pc *senders.ProviderConfig) { pc.Spec.FCM.ProjectID = "" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.fcm.projectID"},
		{name: "project with a path", edit: func(pc *senders.ProviderConfig) { pc.Spec.FCM.ProjectID = "a/../b" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.fcm.projectID"},
		{name: "bad endpoint", edit: func(pc *senders.ProviderConfig) { pc.Spec.Endpoint = "ftp://x" }, reason: v1alpha1.ReasonInvalidSpec, field: "spec.endpoint"},
		{name: "missing credentials", edit: func(pc *senders.ProviderConfig) { pc.Secret = nil }, reason: v1alpha1.ReasonSecretKeyMissing, field: "credentials.json"},
		{name: "not JSON", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = []byte("s3cr3t") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "not a service account", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("type", "authorized_user") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "no client_email", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("client_email", "") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "no private_key", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("private_key", "") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "private_key not PEM", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("private_key", "s3cr3t") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "private_key not RSA", edit: func(pc *senders.ProviderConfig) {
			pc.Secret[fcm.KeyCredentials] = with("private_key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})))
		}, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "no token_uri", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("token_uri", "") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "relative token_uri", edit: func(pc *senders.ProviderConfig) { pc.Secret[fcm.KeyCredentials] = with("token_uri", "/token") }, reason: v1alpha1.ReasonInvalidSecret, field: "credentials.json"},
		{name: "bad CA", edit: func(pc *senders.ProviderConfig) { pc.CA = []byte("nope") }, reason: v1alpha1.ReasonInvalidSecret, field: "tls.caSecretRef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			pc := e.config()
			pc.Secret = map[string][]byte{fcm.KeyCredentials: e.creds}
			tt.edit(&pc)
			_, err := fcm.ConfigFrom(pc)
			var ce *senders.ConfigError
			g.Expect(errors.As(err, &ce)).To(BeTrue(), "got %v", err)
			g.Expect(ce.Reason).To(Equal(tt.reason))
			g.Expect(ce.Field).To(Equal(tt.field))
			g.Expect(err.Error()).NotTo(Or(ContainSubstring("s3cr3t"), ContainSubstring("PRIVATE KEY")))
		})
	}
	t.Run("defaults", func(t *testing.T) {
		g := NewWithT(t)
		pc := e.config()
		pc.Spec.Endpoint, pc.Spec.Timeout = "", nil
		cfg, err := fcm.ConfigFrom(pc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.Endpoint).To(Equal("https://fcm.googleapis.com"))
		g.Expect(cfg.Timeout).To(Equal(senders.DefaultTimeout))
		g.Expect(cfg.String()).NotTo(ContainSubstring("PRIVATE"))
	})
	t.Run("New without credentials", func(t *testing.T) {
		_, err := fcm.New(fcm.Config{ProjectID: project})
		NewWithT(t).Expect(err).To(HaveOccurred())
	})
}
