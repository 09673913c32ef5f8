// Package sendgrid is a loopback SendGrid v3 mail send server: Bearer auth,
// the request validation SendGrid applies, 202 with X-Message-Id, its
// {"errors": [...]} bodies and scripted faults.
package sendgrid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"sync"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// DefaultAPIKey is accepted when Options leaves APIKey empty.
const DefaultAPIKey = "SG.fake-key-id.fake-key-secret"

// MaxBody is SendGrid's limit on the whole request (30 MB).
const MaxBody = 30 << 20

// Options configures the fake.
type Options struct {
	APIKey string
	// Seed drives the Script's random faults.
	Seed uint64
}

// Email is an address in a v3 payload.
type Email struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Personalization is one envelope of a v3 payload.
type Personalization struct {
	To         []Email           `json:"to"`
	CC         []Email           `json:"cc,omitempty"`
	BCC        []Email           `json:"bcc,omitempty"`
	Subject    string            `json:"subject,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	CustomArgs map[string]string `json:"custom_args,omitempty"`
}

// Content is one body part.
type Content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Mail is the part of a v3 mail send payload the fake understands.
type Mail struct {
	Personalizations []Personalization `json:"personalizations"`
	From             *Email            `json:"from"`
	ReplyTo          *Email            `json:"reply_to,omitempty"`
	Subject          string            `json:"subject,omitempty"`
	Content          []Content         `json:"content"`
	Headers          map[string]string `json:"headers,omitempty"`
	CustomArgs       map[string]string `json:"custom_args,omitempty"`
	Categories       []string          `json:"categories,omitempty"`
	TemplateID       string            `json:"template_id,omitempty"`
}

// Request is one request the fake answered.
type Request struct {
	Time   time.Time
	Header http.Header
	Raw    []byte
	Mail   Mail
	// Status is what the fake answered (-1: dropped); MessageID is the
	// X-Message-Id of an accepted (202) send.
	Status    int
	MessageID string
}

// Server is the fake.
type Server struct {
	*fake.HTTP
	Script   *fake.Script
	Received fake.Log[Request]
	// Callbacks are the Event Webhook posts, signed as SendGrid's Signed
	// Event Webhook signs them.
	Callbacks fake.Poster

	key    string
	signer *ecdsa.PrivateKey

	mu      sync.Mutex
	webhook string
	events  []Event
}

// Event is how a message the fake accepted ends, as an Event Webhook event.
type Event struct {
	// Event is delivered, bounce, dropped, spamreport or unsubscribe.
	Event string
	// Type is a bounce's type (bounce or blocked); Reason its text.
	Type, Reason string
}

// SetEventWebhook makes the fake post events to u after it accepts a
// message, as SendGrid's Event Webhook setting does ("" stops it).
func (s *Server) SetEventWebhook(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook = u
}

// PushEvent queues how the next accepted messages end; without one they
// are delivered. Spam reports and unsubscribes follow a delivery.
func (s *Server) PushEvent(e ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e...)
}

// VerificationKey is the Signed Event Webhook's verification key as
// SendGrid shows it: the base64 DER of the P-256 public key.
func (s *Server) VerificationKey() string {
	der, _ := x509.MarshalPKIXPublicKey(&s.signer.PublicKey)
	return base64.StdEncoding.EncodeToString(der)
}

// eventsFor returns the webhook URL and the events for one accepted mail.
func (s *Server) eventsFor(m Mail, messageID string) (string, []map[string]any) {
	s.mu.Lock()
	u := s.webhook
	end := Event{Event: "delivered"}
	if len(s.events) > 0 && u != "" {
		end, s.events = s.events[0], s.events[1:]
	}
	s.mu.Unlock()
	if u == "" {
		return "", nil
	}
	now := time.Now().Unix()
	var out []map[string]any
	for i, p := range m.Personalizations {
		for _, to := range p.To {
			sgID := fmt.Sprintf("%s.filterdrecv-%d.%d", messageID, i, now)
			ev := func(name string) map[string]any {
				e := map[string]any{"email": to.Email, "timestamp": now, "event": name, "sg_message_id": sgID,
					"sg_event_id": randID(), "smtp-id": "<" + messageID + "@ismtpd0001p1>", "category": m.Categories}
				for k, v := range m.CustomArgs {
					e[k] = v
				}
				for k, v := range p.CustomArgs {
					e[k] = v
				}
				return e
			}
			out = append(out, ev("processed"))
			switch end.Event {
			case "spamreport", "unsubscribe":
				out = append(out, ev("delivered"), ev(end.Event))
			default:
				e := ev(end.Event)
				if end.Type != "" {
					e["type"] = end.Type
				}
				if end.Reason != "" {
					e["reason"] = end.Reason
				}
				out = append(out, e)
			}
		}
	}
	return u, out
}

// PostEvents signs events and posts them to u, as the Signed Event Webhook does.
func (s *Server) PostEvents(u string, events []map[string]any) fake.Callback {
	body, _ := json.Marshal(events)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, s.signer, h[:])
	if err != nil {
		return fake.Callback{URL: u, Err: err}
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "SendGrid Event API")
	hdr.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	hdr.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	return s.Callbacks.Post(u, hdr, body)
}

// New starts the fake on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &Server{Script: fake.NewScript(opts.Seed), key: opts.APIKey, signer: signer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/mail/send", s.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, apiError{Message: "Not Found"})
	})
	if s.HTTP, err = fake.ServeHTTP(mux); err != nil {
		return nil, err
	}
	return s, nil
}

// APIKey is the key the fake accepts.
func (s *Server) APIKey() string { return s.key }

// Accepted returns the requests answered with 202.
func (s *Server) Accepted() []Request {
	var out []Request
	for _, r := range s.Received.All() {
		if r.Status == http.StatusAccepted {
			out = append(out, r)
		}
	}
	return out
}

type apiError struct {
	Message string  `json:"message"`
	Field   *string `json:"field"`
	Help    *string `json:"help"`
}

func field(f string) *string { return &f }

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: time.Now(), Header: r.Header.Clone()}
	defer func() { s.Received.Add(rec) }()

	if r.Header.Get("Authorization") != "Bearer "+s.key {
		rec.Status = writeErrors(w, http.StatusUnauthorized,
			apiError{Message: "The provided authorization grant is invalid, expired, or revoked"})
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		rec.Status = writeErrors(w, http.StatusRequestEntityTooLarge, apiError{Message: "Payload Too Large"})
		return
	}
	rec.Raw = raw

	f := s.Script.Next()
	if !fake.Apply(w, r, f, nil) {
		rec.Status = -1
		return
	}
	if !f.OK() {
		rec.Status = fault(w, f)
		return
	}

	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&rec.Mail); err != nil {
		rec.Status = writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request", Field: field("body")})
		return
	}
	if errs := validate(&rec.Mail); len(errs) > 0 {
		rec.Status = writeErrors(w, http.StatusBadRequest, errs...)
		return
	}
	rec.MessageID = randID()
	rec.Status = http.StatusAccepted
	w.Header().Set("X-Message-Id", rec.MessageID)
	w.WriteHeader(http.StatusAccepted)
	if u, evs := s.eventsFor(rec.Mail, rec.MessageID); u != "" {
		s.Callbacks.Go(func() { s.PostEvents(u, evs) })
	}
}

// validate applies the checks SendGrid makes before accepting a send, with its messages.
func validate(m *Mail) []apiError {
	var errs []apiError
	if len(m.Personalizations) == 0 {
		errs = append(errs, apiError{Message: "The personalizations field is required and must have at least 1 personalization.", Field: field("personalizations")})
	}
	customArgs := 0
	for k, v := range m.CustomArgs {
		customArgs += len(k) + len(v)
	}
	for i, p := range m.Personalizations {
		if len(p.To) == 0 {
			errs = append(errs, apiError{Message: "The to array is required for all personalization objects, and must have at least one email object with a valid email address.", Field: field(fmt.Sprintf("personalizations.%d.to", i))})
		}
		for j, e := range p.To {
			if !validAddress(e.Email) {
				errs = append(errs, apiError{Message: "Does not contain a valid address.", Field: field(fmt.Sprintf("personalizations.%d.to.%d.email", i, j))})
			}
		}
		if m.Subject == "" && p.Subject == "" && m.TemplateID == "" {
			errs = append(errs, apiError{Message: "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.", Field: field("subject")})
		}
		for k, v := range p.CustomArgs {
			customArgs += len(k) + len(v)
		}
	}
	if m.From == nil || !validAddress(m.From.Email) {
		errs = append(errs, apiError{Message: "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.", Field: field("from.email")})
	}
	if len(m.Content) == 0 && m.TemplateID == "" {
		errs = append(errs, apiError{Message: "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.", Field: field("content")})
	}
	for i, c := range m.Content {
		if c.Type == "" || c.Value == "" {
			errs = append(errs, apiError{Message: "The content value must be a string at least one character in length.", Field: field(fmt.Sprintf("content.%d.value", i))})
		}
		if c.Type == "text/plain" && i != 0 {
			errs = append(errs, apiError{Message: "If present, text/plain must be first, followed by text/html, followed by any other content.", Field: field("content")})
		}
	}
	if customArgs > 10000 {
		errs = append(errs, apiError{Message: "The custom_args may not exceed 10,000 bytes.", Field: field("custom_args")})
	}
	return errs
}

func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

var faultMessages = map[int]string{
	http.StatusBadRequest:            "Bad Request",
	http.StatusUnauthorized:          "The provided authorization grant is invalid, expired, or revoked",
	http.StatusForbidden:             "The from address does not match a verified Sender Identity.",
	http.StatusRequestEntityTooLarge: "Payload Too Large",
	http.StatusTooManyRequests:       "too many requests",
	http.StatusInternalServerError:   "internal server error",
}

func fault(w http.ResponseWriter, f fake.Fault) int {
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("X-RateLimit-Limit", "600")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(f.RetryAfter).Unix(), 10))
	}
	fake.SetRetryAfter(w.Header(), f)
	if f.Body != "" {
		fake.WriteHTML(w, status, f.Body)
		return status
	}
	msg := f.Reason
	if msg == "" {
		msg = faultMessages[status]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return writeErrors(w, status, apiError{Message: msg})
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiError) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
	return status
}

func randID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:22]
}
