// Package sendgrid sends email through SendGrid's v3 mail send API with the
// official sendgrid-go SDK. A request is built per send: the SDK's Client
// writes each body into one shared struct, so concurrent sends on it race.
package sendgrid

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	sg "github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/herald-dev/herald/senders"
)

// DefaultEndpoint is SendGrid's global API host; https://api.eu.sendgrid.com
// is the EU one.
const DefaultEndpoint = "https://api.sendgrid.com"

// KeyAPIKey is the Secret key holding the API key.
const KeyAPIKey = "apiKey"

// KeyWebhookVerificationKey is the optional Secret key holding the Signed
// Event Webhook's verification key, as SendGrid shows it: with it (and
// spec.receipts) Herald accepts SendGrid's delivery events.
const KeyWebhookVerificationKey = "webhookVerificationKey"

// Custom args every message carries, for event webhooks and the activity feed.
const (
	ArgMessageID    = "herald_message_id"
	ArgNotification = "herald_notification"
	ArgUID          = "herald_notification_uid"
)

// Config is everything a Sender needs.
type Config struct {
	APIKey   string
	From     mail.Address
	Endpoint *url.URL
	Timeout  time.Duration
	// HTTPClient carries TLS settings and the connection pool; nil means a
	// default client with Timeout.
	HTTPClient *http.Client
}

// String keeps the API key out of logs that print a Config.
func (c Config) String() string {
	return fmt.Sprintf("sendgrid.Config{From: %s, Endpoint: %v, Timeout: %s}", senders.MaskEmail(c.From.Address), c.Endpoint, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// ConfigFrom builds and validates a Config from the provider's spec and Secret.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.SendGrid == nil {
		return Config{}, senders.InvalidSpec("spec.sendgrid", "is required for type sendgrid")
	}
	from := pc.Spec.SendGrid.From
	a, err := mail.ParseAddress(from.Email)
	if err != nil || a.Address != from.Email {
		return Config{}, senders.InvalidSpec("spec.sendgrid.from.email", "is not a valid email address")
	}
	cfg := Config{From: mail.Address{Name: from.Name, Address: from.Email}, Timeout: pc.Timeout()}

	key := strings.TrimSpace(string(pc.Secret[KeyAPIKey]))
	if key == "" {
		return Config{}, senders.MissingKey(KeyAPIKey)
	}
	for _, r := range key {
		if r <= ' ' || r > '~' {
			return Config{}, senders.InvalidKey(KeyAPIKey, "must be one line of printable ASCII")
		}
	}
	cfg.APIKey = key
	if v := pc.Secret[KeyWebhookVerificationKey]; len(v) > 0 {
		if _, err := ParseVerificationKey(string(v)); err != nil {
			return Config{}, senders.InvalidKey(KeyWebhookVerificationKey, err.Error())
		}
	}

	if cfg.Endpoint, err = pc.EndpointURL(DefaultEndpoint); err != nil {
		return Config{}, err
	}
	if cfg.HTTPClient, err = pc.HTTPClient(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Sender sends email through SendGrid. It is safe for concurrent use.
type Sender struct {
	cfg  Config
	host string
	rc   rest.Client
}

// New returns a Sender for cfg.
func New(cfg Config) (*Sender, error) {
	if cfg.APIKey == "" || cfg.From.Address == "" {
		return nil, errors.New("sendgrid: API key and From are required")
	}
	if cfg.Endpoint == nil {
		cfg.Endpoint, _ = url.Parse(DefaultEndpoint)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: senders.GuardedTransport(nil, cfg.Timeout, nil)}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	// A redirect would turn the POST into a GET; report it instead.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{cfg: cfg, host: strings.TrimSuffix(cfg.Endpoint.String(), "/"), rc: rest.Client{HTTPClient: hc}}, nil
}

// Send sends msg.Email to to.Email. ProviderMessageID is SendGrid's X-Message-Id.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	body, err := payload(s.cfg.From, to, msg)
	if err != nil {
		return senders.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	req := sg.GetRequest(s.cfg.APIKey, "/v3/mail/send", s.host)
	req.Method = rest.Post
	req.Body = body
	res, err := s.rc.SendWithContext(ctx, req)
	if res != nil && res.StatusCode >= 200 && res.StatusCode < 300 {
		// Accepted, even if reading the (empty) body failed.
		return senders.Result{ProviderMessageID: http.Header(res.Headers).Get("X-Message-Id")}, nil
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return senders.Result{}, senders.Transient(senders.ReasonTimeout, "", "sendgrid call timed out")
		}
		return senders.Result{}, senders.AsError(err)
	}
	return senders.Result{}, classify(res, to.Email, time.Now())
}

// payload builds the v3 mail send body for one recipient.
func payload(from mail.Address, to senders.Address, msg *senders.Message) ([]byte, error) {
	if msg == nil || msg.Email == nil || (msg.Email.Text == "" && msg.Email.HTML == "") {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "message has no email text or html")
	}
	if a, err := mail.ParseAddress(to.Email); err != nil || a.Address != to.Email {
		return nil, senders.Permanent(senders.ReasonInvalidAddress, "",
			fmt.Sprintf("email %q is not a valid address", senders.MaskEmail(to.Email)))
	}
	m := sgmail.NewV3Mail()
	m.SetFrom(sgmail.NewEmail(from.Name, from.Address))
	m.Subject = msg.Email.Subject
	if m.Subject == "" {
		// SendGrid refuses an empty subject; a blank one is what a mail client sends.
		m.Subject = " "
	}
	p := sgmail.NewPersonalization()
	p.AddTos(sgmail.NewEmail(to.Name, to.Email))
	m.AddPersonalizations(p)
	// SendGrid wants text/plain first.
	if msg.Email.Text != "" {
		m.AddContent(sgmail.NewContent("text/plain", msg.Email.Text))
	}
	if msg.Email.HTML != "" {
		m.AddContent(sgmail.NewContent("text/html", msg.Email.HTML))
	}
	if msg.ID != "" {
		m.SetHeader("Message-ID", senders.EmailMessageID(msg.ID, from.Address))
		m.SetCustomArg(ArgMessageID, msg.ID)
	}
	if u := msg.Email.ListUnsubscribe; u != "" {
		m.SetHeader("List-Unsubscribe", "<"+u+">")
		m.SetHeader("List-Unsubscribe-Post", senders.OneClickUnsubscribe)
	}
	if n := msg.Notification; n.Name != "" {
		m.SetCustomArg(ArgNotification, n.Namespace+"/"+n.Name)
	}
	if uid := msg.Notification.UID; uid != "" {
		m.SetCustomArg(ArgUID, uid)
	}
	if c := msg.Notification.Category; c != "" && len(c) <= 255 {
		m.AddCategories(c)
	}
	// json.Marshal directly rather than sgmail.GetRequestBody, which logs
	// and returns nil on error.
	b, err := json.Marshal(m)
	if err != nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "cannot encode the message: "+err.Error())
	}
	return b, nil
}

type apiErrors struct {
	Errors []struct {
		Message string  `json:"message"`
		Field   *string `json:"field"`
	} `json:"errors"`
}

// classify maps a non-2xx answer to a *senders.Error.
func classify(res *rest.Response, rcpt string, now time.Time) *senders.Error {
	e := &senders.Error{StatusCode: res.StatusCode}
	var body apiErrors
	toField := false
	if json.Unmarshal([]byte(res.Body), &body) == nil && len(body.Errors) > 0 {
		var parts []string
		for _, x := range body.Errors {
			m := x.Message
			if x.Field != nil && *x.Field != "" {
				m = *x.Field + ": " + m
				if strings.HasPrefix(*x.Field, "personalizations.") && strings.Contains(*x.Field, ".to") {
					toField = true
				}
			}
			parts = append(parts, m)
		}
		e.Message = senders.ScrubEmails(strings.Join(parts, "; "), rcpt)
		if len(e.Message) > 500 {
			e.Message = e.Message[:500] + "..."
		}
	}
	h := http.Header(res.Headers)
	switch s := res.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case s == http.StatusBadRequest && toField:
		e.Permanent, e.Reason = true, senders.ReasonInvalidAddress
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge:
		e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
	case s == http.StatusTooManyRequests:
		e.Reason = senders.ReasonRateLimited
		e.RetryAfter = senders.ParseRetryAfter(h.Get("Retry-After"), now)
		if e.RetryAfter == 0 {
			if reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil {
				if d := time.Unix(reset, 0).Sub(now); d > 0 {
					e.RetryAfter = d.Round(time.Second)
				}
			}
		}
	case s >= 500:
		e.Reason = senders.ReasonUnavailable
		e.RetryAfter = senders.ParseRetryAfter(h.Get("Retry-After"), now)
	default:
		e.Permanent, e.Reason = true, senders.ReasonRejected
		if e.Message == "" {
			e.Message = fmt.Sprintf("unexpected status %d", s)
		}
	}
	return e
}

// ParseVerificationKey reads the Event Webhook verification key SendGrid
// shows: a base64 DER (PKIX) P-256 public key, with or without PEM armour.
func ParseVerificationKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "-----BEGIN PUBLIC KEY-----")
	s = strings.TrimSuffix(s, "-----END PUBLIC KEY-----")
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, errors.New("is not base64")
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("is not a public key in DER form")
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("is not an ECDSA P-256 public key")
	}
	return ek, nil
}
