// Package apns is a loopback Apple Push Notification service: the HTTP/2
// provider API over TLS, with provider-token (ES256 JWT) and client-certificate
// auth, Apple's error reasons, and a Script of faults. The real apns2 client
// cannot tell it from api.push.apple.com once it trusts CAPEM.
package apns

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// MaxPayload is Apple's limit for a regular (non-VoIP) notification payload.
const MaxPayload = 4096

// tokenLifetime is how long Apple accepts a provider token after its iat.
const tokenLifetime = time.Hour

// Options configures a Server.
type Options struct {
	// Seed makes the Script's random faults reproducible.
	Seed uint64
	// NoRecord leaves Received empty, for benchmarks and long dev runs.
	NoRecord bool
}

// Request is one push the fake received.
type Request struct {
	// Token is the device token from the path.
	Token string
	// Header holds the request's headers (apns-topic, apns-priority, ...).
	Header http.Header
	// Payload is the decoded JSON body; nil when it did not decode.
	Payload map[string]any
	// Auth is "token" or "certificate"; empty when the request was not authenticated.
	Auth string
	// Status and Reason are what the fake answered (Reason empty on success).
	Status int
	Reason string
}

type signingKey struct {
	teamID string
	pub    *ecdsa.PublicKey
}

// Server is a running fake. Create it with New; it is safe for concurrent use.
type Server struct {
	// Script decides faults; the zero answer is success.
	Script *fake.Script
	// Received records every request unless Options.NoRecord.
	Received *fake.Log[Request]

	ca       *fake.CA
	ln       net.Listener
	srv      *http.Server
	url      string
	done     chan struct{}
	once     sync.Once
	noRecord bool

	mu           sync.RWMutex
	keys         map[string]signingKey // by key id
	unregistered map[string]time.Time  // device token → when it went away

	verified sync.Map // bearer → iat (time.Time); JWTs are reused for up to an hour
	idPrefix string
	ids      atomic.Uint64
}

// New starts a fake on 127.0.0.1 with a fresh CA.
func New(opts Options) (*Server, error) {
	ca, err := fake.NewCA("Herald fake APNs CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.ServerCert()
	if err != nil {
		return nil, err
	}
	ln, err := fake.Listen()
	if err != nil {
		return nil, err
	}
	var prefix [6]byte
	_, _ = rand.Read(prefix[:])
	s := &Server{
		Script:       fake.NewScript(opts.Seed),
		Received:     &fake.Log[Request]{},
		ca:           ca,
		ln:           ln,
		url:          "https://" + ln.Addr().String(),
		done:         make(chan struct{}),
		noRecord:     opts.NoRecord,
		keys:         map[string]signingKey{},
		unregistered: map[string]time.Time{},
		idPrefix:     hex.EncodeToString(prefix[:4]) + "-" + hex.EncodeToString(prefix[4:]) + "-4000-8000-",
	}
	// APNs speaks HTTP/2 only: a client without ALPN h2 fails the handshake,
	// as it would against Apple.
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	s.srv = &http.Server{
		Handler:           s,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			// The certificate is checked per request, so a bad one is
			// answered 403 BadCertificate rather than as a handshake alert
			// that, with TLS 1.3, reaches the client as a racy broken pipe.
			ClientAuth: tls.RequestClientCert,
			NextProtos: []string{"h2"},
		},
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// URL is the base URL, for spec.endpoint.
func (s *Server) URL() string { return s.url }

// Close stops the server and ends requests still waiting on latency.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.srv.Close()
	})
}

// Unregister makes pushes to token answer 410 Unregistered from now on, as
// Apple does after the app is removed from the device.
func (s *Server) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[strings.ToLower(token)] = time.Now()
}

// defaultStatus is the HTTP status Apple answers each reason with.
var defaultStatus = map[string]int{
	"BadCollapseId": 400, "BadDeviceToken": 400, "BadExpirationDate": 400, "BadMessageId": 400,
	"BadPriority": 400, "BadTopic": 400, "DeviceTokenNotForTopic": 400, "DuplicateHeaders": 400,
	"IdleTimeout": 400, "InvalidPushType": 400, "MissingDeviceToken": 400, "MissingTopic": 400,
	"PayloadEmpty": 400, "TopicDisallowed": 400,
	"BadCertificate": 403, "BadCertificateEnvironment": 403, "ExpiredProviderToken": 403,
	"Forbidden": 403, "InvalidProviderToken": 403, "MissingProviderToken": 403,
	"BadPath": 404, "MethodNotAllowed": 405, "ExpiredToken": 410, "Unregistered": 410,
	"PayloadTooLarge": 413, "TooManyProviderTokenUpdates": 429, "TooManyRequests": 429,
	"InternalServerError": 500, "ServiceUnavailable": 503, "Shutdown": 503,
}

// defaultReason is the reason for a fault scripted with a status only.
var defaultReason = map[int]string{
	400: "BadDeviceToken", 403: "Forbidden", 404: "BadPath", 405: "MethodNotAllowed",
	410: "Unregistered", 413: "PayloadTooLarge", 429: "TooManyRequests",
	500: "InternalServerError", 503: "ServiceUnavailable",
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, MaxPayload+1); return &b }}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := s.Script.Next()
	if !fake.Apply(w, r, f, s.done) {
		return
	}

	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	n, _ := io.ReadFull(io.LimitReader(r.Body, MaxPayload+1), *bp)
	body := (*bp)[:n]

	rec := Request{Header: r.Header}
	status, reason := s.check(r, body, &rec)
	scripted := status == 0 && !f.OK()
	if scripted {
		status, reason = f.Status, f.Reason
		if status == 0 {
			status = defaultStatus[reason]
			if status == 0 {
				status = http.StatusBadRequest
			}
		}
		if reason == "" {
			reason = defaultReason[status]
		}
	}

	apnsID := r.Header.Get("apns-id")
	if apnsID == "" {
		apnsID = s.idPrefix + strconv.FormatUint(1e11+s.ids.Add(1), 10)
	}
	h := w.Header()
	h.Set("apns-id", apnsID)
	if scripted {
		fake.SetRetryAfter(h, f)
	}
	switch {
	case status == 0:
		status = http.StatusOK
		w.WriteHeader(status)
	case scripted && f.Body != "":
		fake.WriteHTML(w, status, f.Body)
	default:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		var ts int64
		if status == http.StatusGone {
			ts = time.Now().UnixMilli()
			s.mu.RLock()
			if t, ok := s.unregistered[strings.ToLower(rec.Token)]; ok {
				ts = t.UnixMilli()
			}
			s.mu.RUnlock()
		}
		writeReason(w, reason, ts)
	}

	if !s.noRecord {
		rec.Status, rec.Reason = status, reason
		if len(body) > 0 && len(body) <= MaxPayload {
			var p map[string]any
			if json.Unmarshal(body, &p) == nil {
				rec.Payload = p
			}
		}
		s.Received.Add(rec)
	}
}

func writeReason(w io.Writer, reason string, timestamp int64) {
	b := make([]byte, 0, 64)
	b = append(b, `{"reason":`...)
	b = strconv.AppendQuote(b, reason)
	if timestamp != 0 {
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, timestamp, 10)
	}
	b = append(b, '}')
	_, _ = w.Write(b)
}

// check applies Apple's own validation, in Apple's order: method and path,
// authentication, device token, headers, payload.
func (s *Server) check(r *http.Request, body []byte, rec *Request) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "MethodNotAllowed"
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok {
		return http.StatusNotFound, "BadPath"
	}
	rec.Token = token

	if len(r.TLS.PeerCertificates) > 0 {
		if !s.trusted(r.TLS.PeerCertificates) {
			return http.StatusForbidden, "BadCertificate"
		}
		rec.Auth = "certificate"
		if topic := r.Header.Get("apns-topic"); topic != "" && !certCovers(r.TLS.PeerCertificates[0], topic) {
			return http.StatusBadRequest, "TopicDisallowed"
		}
	} else {
		if reason := s.verifyProviderToken(r.Header.Get("authorization")); reason != "" {
			return http.StatusForbidden, reason
		}
		rec.Auth = "token"
	}

	if token == "" {
		return http.StatusBadRequest, "MissingDeviceToken"
	}
	if len(token) < 64 || !isHex(token) {
		return http.StatusBadRequest, "BadDeviceToken"
	}
	if r.Header.Get("apns-topic") == "" {
		return http.StatusBadRequest, "MissingTopic"
	}
	switch r.Header.Get("apns-priority") {
	case "", "1", "5", "10":
	default:
		return http.StatusBadRequest, "BadPriority"
	}
	switch r.Header.Get("apns-push-type") {
	case "", "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk":
	default:
		return http.StatusBadRequest, "InvalidPushType"
	}
	if exp := r.Header.Get("apns-expiration"); exp != "" {
		if _, err := strconv.ParseInt(exp, 10, 64); err != nil {
			return http.StatusBadRequest, "BadExpirationDate"
		}
	}
	if len(r.Header.Get("apns-collapse-id")) > 64 {
		return http.StatusBadRequest, "BadCollapseId"
	}
	if id := r.Header.Get("apns-id"); id != "" && !isUUID(id) {
		return http.StatusBadRequest, "BadMessageId"
	}
	if len(body) == 0 {
		return http.StatusBadRequest, "PayloadEmpty"
	}
	if len(body) > MaxPayload {
		return http.StatusRequestEntityTooLarge, "PayloadTooLarge"
	}
	s.mu.RLock()
	_, gone := s.unregistered[strings.ToLower(token)]
	s.mu.RUnlock()
	if gone {
		return http.StatusGone, "Unregistered"
	}
	return 0, ""
}

func (s *Server) trusted(chain []*x509.Certificate) bool {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         s.ca.Pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

func certCovers(c *x509.Certificate, topic string) bool {
	for _, ou := range c.Subject.OrganizationalUnit {
		if ou == topic {
			return true
		}
	}
	return false
}

// verifyProviderToken checks an ES256 provider token as Apple does and returns
// Apple's reason when it fails.
func (s *Server) verifyProviderToken(auth string) string {
	bearer, ok := strings.CutPrefix(auth, "bearer ")
	if !ok {
		bearer, ok = strings.CutPrefix(auth, "Bearer ")
	}
	if !ok || bearer == "" {
		return "MissingProviderToken"
	}
	if v, ok := s.verified.Load(bearer); ok {
		if time.Since(v.(time.Time)) > tokenLifetime {
			return "ExpiredProviderToken"
		}
		return ""
	}
	iat, err := s.verifyJWT(bearer)
	if err != nil {
		return "InvalidProviderToken"
	}
	if time.Since(iat) > tokenLifetime {
		return "ExpiredProviderToken"
	}
	s.verified.Store(bearer, iat)
	return ""
}

var errBadJWT = errors.New("bad provider token")

func (s *Server) verifyJWT(bearer string) (time.Time, error) {
	parts := strings.Split(bearer, ".")
	if len(parts) != 3 {
		return time.Time{}, errBadJWT
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
	}
	if fake.DecodeJWTPart(parts[0], &header) != nil || fake.DecodeJWTPart(parts[1], &claims) != nil {
		return time.Time{}, errBadJWT
	}
	if header.Alg != "ES256" || header.Kid == "" || claims.Iss == "" || claims.Iat == 0 {
		return time.Time{}, errBadJWT
	}
	s.mu.RLock()
	key, ok := s.keys[header.Kid]
	s.mu.RUnlock()
	if !ok || key.teamID != claims.Iss {
		return time.Time{}, errBadJWT
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return time.Time{}, errBadJWT
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(key.pub, sum[:], r, ss) {
		return time.Time{}, errBadJWT
	}
	iat := time.Unix(claims.Iat, 0)
	if time.Until(iat) > time.Minute {
		return time.Time{}, errBadJWT
	}
	return iat, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i : i+1]) {
			return false
		}
	}
	return true
}
