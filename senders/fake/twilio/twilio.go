// Package twilio is a loopback Twilio Programmable Messaging server: the
// 2010-04-01 Messages resource with basic auth, form bodies, the real error
// JSON and scripted faults. twilio-go cannot tell it from api.twilio.com once
// its requests are pointed here.
package twilio

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1.
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// Options configures the fake. Empty credentials are filled with fixed test values.
type Options struct {
	AccountSID string
	AuthToken  string
	// APIKeySID and APIKeySecret, when set, are accepted as basic auth too.
	APIKeySID    string
	APIKeySecret string
	// Seed drives the Script's random faults.
	Seed uint64
}

// Test credentials used when Options leaves them empty.
const (
	DefaultAccountSID = "AC00000000000000000000000000000001"
	DefaultAuthToken  = "0123456789abcdef0123456789abcdef"
)

// Request is one request the fake answered.
type Request struct {
	Time                time.Time
	AccountSID          string // from the path
	AuthUser            string // basic auth user (account or API key SID)
	To                  string
	From                string
	MessagingServiceSID string
	Body                string
	// StatusCallback is the URL the fake posts the message's statuses to.
	StatusCallback string
	Header         http.Header
	// Status is what the fake answered; SID is set when it accepted (201).
	Status int
	SID    string
}

// Server is the fake.
type Server struct {
	*fake.HTTP
	Script   *fake.Script
	Received fake.Log[Request]
	// Callbacks are the status callbacks and inbound messages the fake
	// posted, signed as Twilio signs them (X-Twilio-Signature, with the
	// account's auth token).
	Callbacks fake.Poster

	opts     Options
	mu       sync.Mutex
	statuses []Status
}

// Status is how a message the fake accepted ends: its last status callback.
type Status struct {
	// MessageStatus is delivered, undelivered or failed.
	MessageStatus string
	// ErrorCode is Twilio's error number for undelivered and failed.
	ErrorCode string
}

// PushStatus queues how the next accepted messages end; without one they
// are delivered.
func (s *Server) PushStatus(st ...Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses = append(s.statuses, st...)
}

func (s *Server) nextStatus() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.statuses) == 0 {
		return Status{MessageStatus: "delivered"}
	}
	st := s.statuses[0]
	s.statuses = s.statuses[1:]
	return st
}

// Signature is X-Twilio-Signature for a POST of form to fullURL:
// base64(HMAC-SHA1(auth token, URL + each parameter's name and value,
// sorted by name)).
func Signature(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := fullURL
	for _, k := range keys {
		for _, v := range form[k] {
			data += k + v
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// post signs form and posts it to u, as Twilio calls a webhook.
func (s *Server) post(u string, form url.Values) fake.Callback {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("User-Agent", "TwilioProxy/1.1")
	h.Set("X-Twilio-Signature", Signature(s.opts.AuthToken, u, form))
	return s.Callbacks.Post(u, h, []byte(form.Encode()))
}

// statusCallbacks posts what Twilio posts after accepting a message with a
// StatusCallback: sent, then how it ended.
func (s *Server) statusCallbacks(u string, rec Request) {
	st := s.nextStatus()
	base := url.Values{"AccountSid": {rec.AccountSID}, "ApiVersion": {"2010-04-01"}, "MessageSid": {rec.SID}, "SmsSid": {rec.SID},
		"To": {rec.To}, "From": {rec.From}}
	if rec.MessagingServiceSID != "" {
		base.Set("MessagingServiceSid", rec.MessagingServiceSID)
	}
	for _, status := range []string{"sent", st.MessageStatus} {
		form := url.Values{}
		for k, v := range base {
			form[k] = v
		}
		form.Set("MessageStatus", status)
		form.Set("SmsStatus", status)
		if status != "sent" && st.ErrorCode != "" {
			form.Set("ErrorCode", st.ErrorCode)
		}
		s.post(u, form)
	}
}

// Inbound posts an inbound message from a phone to u (the number's
// "A message comes in" webhook), as Twilio does; with Advanced Opt-Out a
// keyword also carries OptOutType.
func (s *Server) Inbound(u, from, to, body string) fake.Callback {
	form := url.Values{"AccountSid": {s.opts.AccountSID}, "ApiVersion": {"2010-04-01"}, "MessageSid": {"SM" + randHex(16)},
		"SmsSid": {"SM" + randHex(16)}, "SmsStatus": {"received"}, "From": {from}, "To": {to}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"}}
	return s.post(u, form)
}

// New starts the fake on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	if opts.AccountSID == "" {
		opts.AccountSID = DefaultAccountSID
	}
	if opts.AuthToken == "" {
		opts.AuthToken = DefaultAuthToken
	}
	s := &Server{Script: fake.NewScript(opts.Seed), opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.messages)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	var err error
	if s.HTTP, err = fake.ServeHTTP(mux); err != nil {
		return nil, err
	}
	return s, nil
}

// AccountSID and AuthToken are the credentials the fake accepts.
func (s *Server) AccountSID() string { return s.opts.AccountSID }

// AuthToken is the account's auth token.
func (s *Server) AuthToken() string { return s.opts.AuthToken }

// Accepted returns the requests answered with 201.
func (s *Server) Accepted() []Request {
	var out []Request
	for _, r := range s.Received.All() {
		if r.Status == http.StatusCreated {
			out = append(out, r)
		}
	}
	return out
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: time.Now(), AccountSID: r.PathValue("sid"), Header: r.Header.Clone()}
	defer func() { s.Received.Add(rec) }()

	user, pass, ok := r.BasicAuth()
	rec.AuthUser = user
	authed := ok && ((user == s.opts.AccountSID && pass == s.opts.AuthToken) ||
		(s.opts.APIKeySID != "" && user == s.opts.APIKeySID && pass == s.opts.APIKeySecret))
	if !authed {
		rec.Status = writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if rec.AccountSID != s.opts.AccountSID {
		rec.Status = writeError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	if err := r.ParseForm(); err != nil {
		rec.Status = writeError(w, http.StatusBadRequest, 20001, "Could not parse the request body")
		return
	}
	rec.To, rec.From, rec.Body = r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")
	rec.MessagingServiceSID = r.PostForm.Get("MessagingServiceSid")
	rec.StatusCallback = r.PostForm.Get("StatusCallback")

	f := s.Script.Next()
	if !fake.Apply(w, r, f, nil) {
		rec.Status = -1
		return
	}
	if !f.OK() {
		rec.Status = s.fault(w, f)
		return
	}

	switch {
	case rec.To == "":
		rec.Status = writeError(w, 400, 21604, "A 'To' phone number is required.")
	case !e164.MatchString(rec.To):
		// Twilio quotes the number; so does the fake, to keep adapters honest about masking.
		rec.Status = writeError(w, 400, 21211, fmt.Sprintf("Invalid 'To' Phone Number: %s", rec.To))
	case rec.From == "" && rec.MessagingServiceSID == "":
		rec.Status = writeError(w, 400, 21603, "A 'From' phone number is required.")
	case rec.Body == "":
		rec.Status = writeError(w, 400, 21602, "Message body is required.")
	case len([]rune(rec.Body)) > 1600:
		rec.Status = writeError(w, 400, 21617, "The concatenated message body exceeds the 1600 character limit.")
	default:
		rec.SID = "SM" + randHex(16)
		rec.Status = s.created(w, rec)
		if cb := rec.StatusCallback; cb != "" {
			s.Callbacks.Go(func() { s.statusCallbacks(cb, rec) })
		}
	}
}

// fault answers a scripted failure. A Twilio error number in Reason without a
// Status gets the HTTP status Twilio uses for it.
func (s *Server) fault(w http.ResponseWriter, f fake.Fault) int {
	code, _ := strconv.Atoi(f.Reason)
	status := f.Status
	if status == 0 {
		status = statusFor(code)
	}
	fake.SetRetryAfter(w.Header(), f)
	if f.Body != "" {
		fake.WriteHTML(w, status, f.Body)
		return status
	}
	if code == 0 {
		code = status // Twilio reports bare HTTP failures with the status as code
	}
	msg, ok := messages[code]
	if !ok {
		msg = http.StatusText(status)
	}
	return writeError(w, status, code, msg)
}

var messages = map[int]string{
	20003: "Authenticate",
	20429: "Too Many Requests",
	21211: "Invalid 'To' Phone Number",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
	21610: "Attempt to send to unsubscribed recipient",
	21614: "'To' number is not a valid mobile number",
	21617: "The concatenated message body exceeds the 1600 character limit",
	30001: "Queue overflow",
}

func statusFor(code int) int {
	switch {
	case code == 20003:
		return http.StatusUnauthorized
	case code == 20429:
		return http.StatusTooManyRequests
	case code >= 20500 && code < 20600:
		return http.StatusInternalServerError
	case code == 0:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func (s *Server) created(w http.ResponseWriter, rec Request) int {
	now := rec.Time.UTC().Format(time.RFC1123Z)
	status := "queued"
	if rec.MessagingServiceSID != "" {
		status = "accepted"
	}
	uri := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", rec.AccountSID, rec.SID)
	res := map[string]any{
		"account_sid":           rec.AccountSID,
		"api_version":           "2010-04-01",
		"body":                  rec.Body,
		"date_created":          now,
		"date_sent":             nil,
		"date_updated":          now,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  nilIfEmpty(rec.From),
		"messaging_service_sid": nilIfEmpty(rec.MessagingServiceSID),
		"num_media":             "0",
		"num_segments":          strconv.Itoa(segments(rec.Body)),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   rec.SID,
		"status":                status,
		"subresource_uris":      map[string]string{"media": strings.TrimSuffix(uri, ".json") + "/Media.json"},
		"to":                    rec.To,
		"uri":                   uri,
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(res)
	return http.StatusCreated
}

func segments(body string) int {
	n := len([]rune(body))
	if n <= 160 {
		return 1
	}
	return (n + 152) / 153
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeError(w http.ResponseWriter, status, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code":      code,
		"message":   msg,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
	return status
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
