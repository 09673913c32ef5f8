// Package webhook is a loopback webhook receiver: it accepts a POST on any
// path (so a Slack-style /services/T/B/X URL works), checks Herald's HMAC
// signature when it has the key, answers like a Slack incoming webhook
// (200 "ok", or an error token such as channel_not_found) and records what it
// got. Faults come from the Script.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// MaxSkew is how far X-Herald-Timestamp may be from the receiver's clock, as
// a receiver guarding against replays would check.
const MaxSkew = 5 * time.Minute

// Options configures the fake.
type Options struct {
	// HMACKey, when set, makes the receiver require and verify X-Herald-Signature.
	HMACKey []byte
	// Seed drives the Script's random faults.
	Seed uint64
}

// Request is one request the receiver answered.
type Request struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	// Signed says the request carried a signature; Verified that it matched
	// the receiver's key.
	Signed   bool
	Verified bool
	// Status is what the receiver answered (-1: dropped).
	Status int
}

// Server is the fake. Its URL is the receiver's base URL: append any path.
type Server struct {
	*fake.HTTP
	Script   *fake.Script
	Received fake.Log[Request]

	key []byte
}

// New starts the receiver on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	s := &Server{Script: fake.NewScript(opts.Seed), key: opts.HMACKey}
	var err error
	if s.HTTP, err = fake.ServeHTTP(http.HandlerFunc(s.handle)); err != nil {
		return nil, err
	}
	return s, nil
}

// Accepted returns the requests answered with a 2xx.
func (s *Server) Accepted() []Request {
	var out []Request
	for _, r := range s.Received.All() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}
	defer func() { s.Received.Add(rec) }()

	if r.Method != http.MethodPost {
		rec.Status = reply(w, http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		rec.Status = reply(w, http.StatusRequestEntityTooLarge, "payload_too_large")
		return
	}
	rec.Body = body

	sig := r.Header.Get("X-Herald-Signature")
	ts := r.Header.Get("X-Herald-Timestamp")
	rec.Signed = sig != ""
	if len(s.key) > 0 {
		rec.Verified = Verify(s.key, ts, body, sig)
		if !rec.Verified {
			rec.Status = reply(w, http.StatusUnauthorized, "invalid_signature")
			return
		}
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if d := time.Since(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
			rec.Verified = false
			rec.Status = reply(w, http.StatusUnauthorized, "stale_timestamp")
			return
		}
	}

	f := s.Script.Next()
	if !fake.Apply(w, r, f, nil) {
		rec.Status = -1
		return
	}
	if !f.OK() {
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		fake.SetRetryAfter(w.Header(), f)
		if f.Body != "" {
			fake.WriteHTML(w, status, f.Body)
			rec.Status = status
			return
		}
		text := f.Reason
		if text == "" {
			text = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
		}
		rec.Status = reply(w, status, text)
		return
	}
	rec.Status = reply(w, http.StatusOK, "ok")
}

// Verify checks a Herald signature: "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>" under key. It is what a receiver in Go would write.
func Verify(key []byte, timestamp string, body []byte, signature string) bool {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok || timestamp == "" {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func reply(w http.ResponseWriter, status int, text string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
	return status
}
