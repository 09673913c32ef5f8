// Package twilio is a loopback Twilio Programmable Messaging server: the
// 2010-04-01 Messages resource with basic auth, form bodies, the real error
// JSON and scripted faults. twilio-go cannot tell it from api.twilio.com once
// its requests are pointed here.
package twilio

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
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
	Header              http.Header
	// Status is what the fake answered; SID is set when it accepted (201).
	Status int
	SID    string
}

// Server is the fake.
type Server struct {
	*fake.HTTP
	Script   *fake.Script
	Received fake.Log[Request]

	opts Options
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
