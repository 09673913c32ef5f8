// Package twilio sends SMS through Twilio Programmable Messaging with the
// official twilio-go SDK. The SDK has no base-URL setting and no context
// parameter, so each Send gives it an http.Client whose RoundTripper carries
// the call's context, points the request at spec.endpoint and keeps the
// response status and Retry-After for classification.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/herald-dev/herald/internal/receipt"
	"github.com/herald-dev/herald/senders"
)

// DefaultEndpoint is Twilio's REST API.
const DefaultEndpoint = "https://api.twilio.com"

// Secret keys.
const (
	KeyAccountSID   = "accountSID"
	KeyAuthToken    = "authToken"
	KeyAPIKeySID    = "apiKeySID"
	KeyAPIKeySecret = "apiKeySecret"
)

// Config is everything a Sender needs. Username and Password are the basic
// auth pair: the account SID and auth token, or an API key SID and secret.
type Config struct {
	AccountSID string
	Username   string
	Password   string
	// Exactly one of From and MessagingServiceSID is set.
	From                string
	MessagingServiceSID string
	// Endpoint is the base URL requests go to.
	Endpoint *url.URL
	Timeout  time.Duration
	// HTTPClient supplies the transport (TLS settings, connection pool); nil
	// means http.DefaultTransport.
	HTTPClient *http.Client
	// StatusCallback, when set, is the URL Twilio posts the message's
	// status changes to; each send adds the query that names its delivery.
	StatusCallback string
}

// String keeps credentials out of logs that print a Config.
func (c Config) String() string {
	return fmt.Sprintf("twilio.Config{AccountSID: %s, From: %s, MessagingServiceSID: %s, Endpoint: %v, Timeout: %s}",
		c.AccountSID, senders.MaskPhone(c.From), c.MessagingServiceSID, c.Endpoint, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

var (
	accountSIDRe = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeySIDRe  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDRe = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	alnumRe      = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	e164Re       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// ConfigFrom builds and validates a Config from the provider's spec and Secret.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.Twilio == nil {
		return Config{}, senders.InvalidSpec("spec.twilio", "is required for type twilio")
	}
	spec := pc.Spec.Twilio
	cfg := Config{From: spec.From, MessagingServiceSID: spec.MessagingServiceSID, Timeout: pc.Timeout()}
	switch {
	case (cfg.From == "") == (cfg.MessagingServiceSID == ""):
		return Config{}, senders.InvalidSpec("spec.twilio", "exactly one of from or messagingServiceSID must be set")
	case cfg.From != "" && !e164Re.MatchString(cfg.From):
		return Config{}, senders.InvalidSpec("spec.twilio.from", "must be an E.164 number such as +14155550100")
	case cfg.MessagingServiceSID != "" && !serviceSIDRe.MatchString(cfg.MessagingServiceSID):
		return Config{}, senders.InvalidSpec("spec.twilio.messagingServiceSID", "must be MG followed by 32 hex digits")
	}

	sid, err := key(pc, KeyAccountSID)
	if err != nil {
		return Config{}, err
	}
	if !accountSIDRe.MatchString(sid) {
		return Config{}, senders.InvalidKey(KeyAccountSID, "must be AC followed by 32 hex digits")
	}
	cfg.AccountSID = sid
	if len(pc.Secret[KeyAPIKeySID]) > 0 {
		if cfg.Username, err = key(pc, KeyAPIKeySID); err != nil {
			return Config{}, err
		}
		if !apiKeySIDRe.MatchString(cfg.Username) {
			return Config{}, senders.InvalidKey(KeyAPIKeySID, "must be SK followed by 32 hex digits")
		}
		if cfg.Password, err = key(pc, KeyAPIKeySecret); err != nil {
			return Config{}, err
		}
		if !alnumRe.MatchString(cfg.Password) {
			return Config{}, senders.InvalidKey(KeyAPIKeySecret, "must be letters and digits only")
		}
	} else {
		cfg.Username = sid
		if cfg.Password, err = key(pc, KeyAuthToken); err != nil {
			return Config{}, err
		}
		if !alnumRe.MatchString(cfg.Password) {
			return Config{}, senders.InvalidKey(KeyAuthToken, "must be letters and digits only")
		}
	}

	if cfg.Endpoint, err = pc.EndpointURL(DefaultEndpoint); err != nil {
		return Config{}, err
	}
	if cfg.HTTPClient, err = pc.HTTPClient(); err != nil {
		return Config{}, err
	}
	// Twilio signs callbacks with the account's auth token: without it in
	// the Secret (API key credentials alone) they could not be verified,
	// so none are asked for.
	if pc.ReceiptURL != "" && strings.TrimSpace(string(pc.Secret[KeyAuthToken])) != "" {
		cfg.StatusCallback = pc.ReceiptURL
	}
	return cfg, nil
}

// key returns a Secret value with surrounding whitespace (a trailing newline
// from `kubectl create secret --from-file`) removed.
func key(pc senders.ProviderConfig, k string) (string, error) {
	v := strings.TrimSpace(string(pc.Secret[k]))
	if v == "" {
		return "", senders.MissingKey(k)
	}
	return v, nil
}

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	cfg  Config
	base http.RoundTripper
}

// New returns a Sender for cfg.
func New(cfg Config) (*Sender, error) {
	switch {
	case cfg.AccountSID == "" || cfg.Username == "" || cfg.Password == "":
		return nil, errors.New("twilio: account SID and credentials are required")
	case (cfg.From == "") == (cfg.MessagingServiceSID == ""):
		return nil, errors.New("twilio: exactly one of From and MessagingServiceSID is required")
	}
	if cfg.Endpoint == nil {
		u, _ := url.Parse(DefaultEndpoint)
		cfg.Endpoint = u
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	s := &Sender{cfg: cfg, base: senders.GuardedTransport(nil, cfg.Timeout, nil)}
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		s.base = cfg.HTTPClient.Transport
	}
	return s, nil
}

// Send sends msg.SMS to to.Phone. ProviderMessageID is the message SID.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	if msg == nil || msg.SMS == nil || msg.SMS.Text == "" {
		return senders.Result{}, senders.Permanent(senders.ReasonPayloadRejected, "", "message has no SMS text")
	}
	if !e164Re.MatchString(to.Phone) {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "",
			fmt.Sprintf("phone %q is not an E.164 number", senders.MaskPhone(to.Phone)))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	rt := &callTransport{ctx: ctx, base: s.base, endpoint: s.cfg.Endpoint}
	c := &client.Client{
		Credentials: client.NewCredentials(s.cfg.Username, s.cfg.Password),
		HTTPClient: &http.Client{
			Transport:     rt,
			Timeout:       s.cfg.Timeout,
			CheckRedirect: senders.NoRedirects,
		},
	}
	c.SetAccountSid(s.cfg.AccountSID)
	// A RequestHandler built by hand, not NewRequestHandler: the latter reads
	// TWILIO_EDGE/TWILIO_REGION from the environment, and spec.endpoint is
	// the one place that says where requests go.
	api := openapi.NewApiService(&client.RequestHandler{Client: c})

	params := &openapi.CreateMessageParams{}
	params.SetTo(to.Phone)
	params.SetBody(msg.SMS.Text)
	if s.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(s.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(s.cfg.From)
	}
	if s.cfg.StatusCallback != "" {
		n := msg.Notification
		params.SetStatusCallback(s.cfg.StatusCallback + "?" + receipt.CallbackQuery(n.Namespace, n.Name, n.UID, msg.ID).Encode())
	}
	res, err := api.CreateMessage(params)
	if rt.status >= 200 && rt.status < 300 {
		// Accepted: even if the body did not decode, sending again would
		// deliver twice.
		var r senders.Result
		if err == nil && res != nil && res.Sid != nil {
			r.ProviderMessageID = *res.Sid
		}
		return r, nil
	}
	if err == nil {
		err = fmt.Errorf("unexpected status %d", rt.status)
	}
	return senders.Result{}, classify(ctx, err, rt.status, rt.retryAfter)
}

// classify maps a failed CreateMessage to a *senders.Error. status is the HTTP
// status the transport saw (0 when no response arrived).
func classify(ctx context.Context, err error, status int, retryAfter time.Duration) *senders.Error {
	var te *client.TwilioRestError
	isRest := errors.As(err, &te)
	if status == 0 {
		if isRest {
			// Raised by the SDK before any request (credential syntax).
			return senders.Permanent(senders.ReasonAuthFailed, strconv.Itoa(te.Code), scrub(te.Message))
		}
		if ctx.Err() == context.DeadlineExceeded {
			return senders.Transient(senders.ReasonTimeout, "", "twilio call timed out")
		}
		return senders.AsError(err)
	}

	e := &senders.Error{StatusCode: status, RetryAfter: retryAfter}
	code := 0
	if isRest {
		code = te.Code
		e.Code = strconv.Itoa(te.Code)
		e.Message = scrub(te.Message)
	} else if status >= 500 {
		e.Message = "provider answered with a non-JSON body"
	}
	switch {
	case code == 21211 || code == 21614:
		e.Permanent, e.Reason = true, senders.ReasonInvalidAddress
	case code == 21610:
		e.Permanent, e.Reason = true, senders.ReasonUnsubscribed
	case code == 21602 || code == 21617:
		e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
	case code == 20003 || status == http.StatusUnauthorized:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case code == 20429 || status == http.StatusTooManyRequests:
		e.Reason = senders.ReasonRateLimited
	case status >= 500:
		e.Reason = senders.ReasonUnavailable
	case status >= 400:
		e.Permanent, e.Reason = true, senders.ReasonRejected
	default:
		e.Permanent, e.Reason = true, senders.ReasonRejected
		e.Message = fmt.Sprintf("unexpected status %d", status)
	}
	return e
}

// callTransport is the seam into the SDK for one call: it binds the request
// to the call's context, sends it to the configured endpoint (keeping the
// path under the endpoint's own path) and remembers what came back.
type callTransport struct {
	ctx      context.Context
	base     http.RoundTripper
	endpoint *url.URL

	status     int
	retryAfter time.Duration
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(t.ctx)
	r.URL.Scheme = t.endpoint.Scheme
	r.URL.Host = t.endpoint.Host
	r.URL.Path = strings.TrimSuffix(t.endpoint.Path, "/") + req.URL.Path
	r.URL.RawPath = ""
	r.Host = ""
	res, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.status = res.StatusCode
	t.retryAfter = senders.ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	return res, nil
}
