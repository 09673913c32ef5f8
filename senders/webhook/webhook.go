// Package webhook posts messages to chat incoming webhooks (Slack and the
// many services that accept its {"text": ...} body) and to generic HTTP
// receivers, as Herald's JSON envelope, optionally signed with HMAC-SHA256.
//
// The URL is treated as a secret throughout: a Slack webhook URL is the
// credential. It never appears in an error, and provider text that echoes it
// is redacted.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-dev/herald/senders"
)

// Secret keys.
const (
	KeyURL     = "url"
	KeyHMACKey = "hmacKey"
)

// Body formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// Headers Herald sets on every request.
const (
	HeaderDelivery  = "X-Herald-Delivery"
	HeaderTimestamp = "X-Herald-Timestamp"
	HeaderSignature = "X-Herald-Signature"
)

// Config is everything a Sender needs.
type Config struct {
	// URL is where messages are posted. It is a secret.
	URL    *url.URL
	Format string
	// Headers are added to every request.
	Headers http.Header
	// HMACKey, when set, signs every request.
	HMACKey []byte
	Timeout time.Duration
	// HTTPClient carries TLS settings and the connection pool; nil means a
	// default client with Timeout.
	HTTPClient *http.Client
	// Now is the clock for signature timestamps; nil means time.Now.
	Now func() time.Time
}

// String keeps the URL and key out of logs that print a Config.
func (c Config) String() string {
	host := ""
	if c.URL != nil {
		host = c.URL.Scheme + "://" + c.URL.Host + "/<redacted>"
	}
	return fmt.Sprintf("webhook.Config{URL: %s, Format: %s, Signed: %t, Timeout: %s}", host, c.Format, len(c.HMACKey) > 0, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// reserved headers are set by Herald or by net/http and cannot come from the spec.
var reserved = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	HeaderDelivery: true, HeaderTimestamp: true, HeaderSignature: true,
}

var tokenRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// ConfigFrom builds and validates a Config from the provider's spec and Secret.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.Webhook == nil {
		return Config{}, senders.InvalidSpec("spec.webhook", "is required for type webhook")
	}
	spec := pc.Spec.Webhook
	cfg := Config{Format: spec.Format, Timeout: pc.Timeout(), Headers: http.Header{}}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if !slices.Contains(Formats, cfg.Format) {
		return Config{}, senders.InvalidSpec("spec.webhook.format", "must be one of "+strings.Join(Formats, ", "))
	}

	// Neither error quotes the URL: for Slack it is the credential.
	if raw := strings.TrimSpace(string(pc.Secret[KeyURL])); raw != "" {
		u, ok := parseURL(raw)
		if !ok {
			return Config{}, senders.InvalidKey(KeyURL, "must be an absolute http(s) URL")
		}
		cfg.URL = u
	} else if spec.URL != "" {
		u, ok := parseURL(spec.URL)
		if !ok {
			return Config{}, senders.InvalidSpec("spec.webhook.url", "must be an absolute http(s) URL")
		}
		cfg.URL = u
	} else if pc.Spec.SecretRef != nil {
		return Config{}, senders.MissingKey(KeyURL)
	} else {
		return Config{}, senders.InvalidSpec("spec.webhook.url", "is required unless the Secret has the key url")
	}

	if pc.Spec.Endpoint != "" {
		// endpoint redirects the request (a proxy, a test receiver) to
		// another scheme and host; the path and query stay the URL's. An
		// endpoint with a path of its own is refused rather than joined
		// to the URL's, which would post to an address neither names.
		e, ok := parseURL(pc.Spec.Endpoint)
		if !ok {
			return Config{}, senders.InvalidSpec("spec.endpoint", "must be an absolute http(s) URL")
		}
		if strings.Trim(e.Path, "/") != "" || e.RawQuery != "" {
			return Config{}, senders.InvalidSpec("spec.endpoint", "for a webhook provider takes a scheme and host only (the path comes from the webhook url); remove its path")
		}
		u := *cfg.URL
		u.Scheme, u.Host = e.Scheme, e.Host
		cfg.URL = &u
	}

	for k, v := range spec.Headers {
		if !tokenRe.MatchString(k) {
			return Config{}, senders.InvalidSpec("spec.webhook.headers", fmt.Sprintf("%q is not a valid header name", k))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return Config{}, senders.InvalidSpec("spec.webhook.headers", fmt.Sprintf("the value of %s contains a line break", k))
		}
		if reserved[http.CanonicalHeaderKey(k)] {
			return Config{}, senders.InvalidSpec("spec.webhook.headers", fmt.Sprintf("%s is set by Herald", http.CanonicalHeaderKey(k)))
		}
		cfg.Headers.Set(k, v)
	}

	if k := bytes.TrimSpace(pc.Secret[KeyHMACKey]); len(k) > 0 {
		cfg.HMACKey = k
	}
	var err error
	if cfg.HTTPClient, err = pc.HTTPClient(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func parseURL(s string) (*url.URL, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, false
	}
	return u, true
}

// Sender posts messages to one webhook. It is safe for concurrent use.
type Sender struct {
	cfg Config
	hc  *http.Client
	url string
}

// New returns a Sender for cfg.
func New(cfg Config) (*Sender, error) {
	if cfg.URL == nil {
		return nil, errors.New("webhook: URL is required")
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if !slices.Contains(Formats, cfg.Format) {
		return nil, errors.New("webhook: format must be one of " + strings.Join(Formats, ", "))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: senders.GuardedTransport(nil, cfg.Timeout, nil)}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	// A redirect would turn the POST into a GET and could carry the
	// signature elsewhere; report it instead.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{cfg: cfg, hc: hc, url: cfg.URL.String()}, nil
}

// Envelope is the body of a json-format webhook when the template gives no
// body of its own.
type Envelope struct {
	// ID is the delivery id, also in X-Herald-Delivery: the same on a retry.
	ID           string          `json:"id"`
	Notification EnvelopeSource  `json:"notification"`
	Category     string          `json:"category,omitempty"`
	Priority     string          `json:"priority,omitempty"`
	Title        string          `json:"title,omitempty"`
	Text         string          `json:"text"`
	Link         string          `json:"link,omitempty"`
	Body         json.RawMessage `json:"body,omitempty"`
}

// EnvelopeSource names the Notification a webhook came from.
type EnvelopeSource struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Body returns the request body for msg in format: the rendered Webhook.Body
// as is when there is one, otherwise Herald's envelope (json) or the chat
// service's message (see formats.go).
func Body(format string, msg *senders.Message) ([]byte, error) {
	if msg == nil || msg.Webhook == nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "message has no webhook content")
	}
	w := msg.Webhook
	if len(w.Body) > 0 {
		if !json.Valid(w.Body) {
			return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "webhook body is not valid JSON")
		}
		return w.Body, nil
	}
	if w.Text == "" && w.Title == "" {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "webhook message has neither text nor body")
	}
	if format != FormatJSON {
		v, err := chatBody(format, msg)
		if err != nil {
			return nil, err
		}
		return marshal(v)
	}
	n := msg.Notification
	return marshal(Envelope{
		ID:           msg.ID,
		Notification: EnvelopeSource{Namespace: n.Namespace, Name: n.Name, UID: n.UID},
		Category:     n.Category,
		Priority:     string(msg.Priority),
		Title:        w.Title,
		Text:         w.Text,
		Link:         w.Link,
	})
}

// Sign returns the X-Herald-Signature value for body sent at timestamp (Unix
// seconds, as in X-Herald-Timestamp): "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>".
func Sign(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Send posts msg. The address is unused: the webhook is the recipient.
// ProviderMessageID is the receiver's request id header, if it sent one.
func (s *Sender) Send(ctx context.Context, _ senders.Address, msg *senders.Message) (senders.Result, error) {
	body, err := Body(s.cfg.Format, msg)
	if err != nil {
		return senders.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return senders.Result{}, senders.Permanent(senders.ReasonRejected, "", "cannot build the request")
	}
	for k, v := range s.cfg.Headers {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Herald-Webhook/1")
	}
	if msg.ID != "" {
		req.Header.Set(HeaderDelivery, msg.ID)
	}
	if len(s.cfg.HMACKey) > 0 {
		ts := strconv.FormatInt(s.cfg.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(s.cfg.HMACKey, ts, body))
	}

	res, err := s.hc.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return senders.Result{}, senders.Transient(senders.ReasonTimeout, "", "webhook call timed out")
		}
		e := *senders.AsError(err)
		e.Message = s.redact(e.Message)
		return senders.Result{}, &e
	}
	defer func() { _ = res.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // let the connection be reused

	if res.StatusCode >= 200 && res.StatusCode < 300 {
		id := res.Header.Get("X-Request-Id")
		if id == "" {
			id = res.Header.Get("X-Slack-Req-Id")
		}
		return senders.Result{ProviderMessageID: id}, nil
	}
	return senders.Result{}, s.classify(res, snippet, s.cfg.Now())
}

var slackTokenRe = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

func (s *Sender) classify(res *http.Response, snippet []byte, now time.Time) *senders.Error {
	e := &senders.Error{StatusCode: res.StatusCode}
	text := strings.TrimSpace(string(snippet))
	// A webhook can point anywhere the egress policy allows, so what the
	// receiver answered is not copied into status (where the tenant reads
	// it): only the status and an error token in Slack's documented form
	// (channel_not_found, invalid_payload, ...), which is all a chat
	// service says anyway.
	e.Message = fmt.Sprintf("the receiver answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	if slackTokenRe.MatchString(text) {
		e.Code = text
		e.Message += ": " + text
	}
	switch st := res.StatusCode; {
	case st == http.StatusTooManyRequests:
		e.Reason = senders.ReasonRateLimited
		e.RetryAfter = senders.ParseRetryAfter(res.Header.Get("Retry-After"), now)
	case st >= 500:
		e.Reason = senders.ReasonUnavailable
		e.RetryAfter = senders.ParseRetryAfter(res.Header.Get("Retry-After"), now)
	case st == http.StatusRequestTimeout:
		e.Reason = senders.ReasonTimeout
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case st == http.StatusBadRequest || st == http.StatusRequestEntityTooLarge || st == http.StatusUnprocessableEntity:
		e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
	case st >= 300 && st < 400:
		e.Permanent, e.Reason = true, senders.ReasonRejected
		e.Message = fmt.Sprintf("unexpected redirect (status %d)", st)
	default:
		// 404 and 410 Gone included: the hook or its channel no longer exists.
		e.Permanent, e.Reason = true, senders.ReasonRejected
	}
	return e
}

// redact removes the URL and its secret parts from text.
func (s *Sender) redact(text string) string {
	u := s.cfg.URL
	for _, secret := range []string{s.url, u.String(), u.RequestURI(), u.EscapedPath(), u.Path, u.RawQuery} {
		if len(secret) > 1 {
			text = strings.ReplaceAll(text, secret, "<redacted>")
		}
	}
	return text
}
