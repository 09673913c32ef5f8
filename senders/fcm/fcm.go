// Package fcm sends push notifications to Android, web and iOS devices
// through Firebase Cloud Messaging's HTTP v1 API (firebase.google.com/go/v4),
// and classifies FCM's answers into senders.Error.
package fcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
	"google.golang.org/api/option"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// scopeMessaging is the narrowest OAuth2 scope that can send.
const scopeMessaging = "https://www.googleapis.com/auth/firebase.messaging"

// Sender sends through one FCM client. It is safe for concurrent use.
type Sender struct {
	client  *messaging.Client
	base    http.RoundTripper
	project string
	timeout time.Duration
	log     logr.Logger
}

var _ senders.Sender = (*Sender)(nil)

// New returns a Sender for cfg. Credentials are always the Secret's service
// account: the HTTP client handed to the SDK carries its own OAuth2 token
// source, so the SDK's default-credential discovery (which probes the cloud
// metadata server) never runs. It does not connect until the first Send.
func New(cfg Config) (*Sender, error) {
	if err := checkProjectID(cfg.ProjectID); err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	endpoint, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if len(cfg.Credentials) == 0 {
		return nil, senders.MissingKey(KeyCredentials)
	}
	sa, err := parseServiceAccount(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	base := senders.GuardedTransport(cfg.Dial, cfg.Timeout, tc)

	// The token exchange is not tied to one send's context: bound it here.
	// Its URL comes from the tenant's credentials file: the same guard.
	tokenClient := &http.Client{Transport: base, Timeout: cfg.Timeout, CheckRedirect: senders.NoRedirects}
	jc := &jwt.Config{
		Email:        sa.ClientEmail,
		PrivateKey:   []byte(sa.PrivateKey),
		PrivateKeyID: sa.PrivateKeyID,
		Scopes:       []string{scopeMessaging},
		TokenURL:     sa.TokenURI,
	}
	ts := jc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient))
	api := &http.Client{
		CheckRedirect: senders.NoRedirects,
		Transport:     &retryStopper{base: &oauth2.Transport{Source: ts, Base: base}},
		// Each send's context is the real bound; this is a backstop.
		Timeout: cfg.Timeout + time.Second,
	}
	app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: cfg.ProjectID},
		option.WithHTTPClient(api), option.WithEndpoint(endpoint+"/v1"))
	if err != nil {
		return nil, senders.InvalidSpec("spec.fcm", "cannot create the Firebase app: "+err.Error())
	}
	mc, err := app.Messaging(context.Background())
	if err != nil {
		return nil, senders.InvalidSpec("spec.fcm", "cannot create the messaging client: "+err.Error())
	}
	return &Sender{client: mc, base: base, project: cfg.ProjectID, timeout: cfg.Timeout, log: cfg.Log}, nil
}

// Close drops idle connections; call it when the provider is reconfigured.
func (s *Sender) Close() error {
	if c, ok := s.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// Send sends msg.Push to an android, web or ios registration token. The
// error, if any, is a *senders.Error.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	if to.Device == nil || to.Device.Token == "" {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "", "no registration token")
	}
	switch to.Device.Platform {
	case v1alpha1.PlatformAndroid, v1alpha1.PlatformWeb, v1alpha1.PlatformIOS:
	default:
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "",
			"fcm delivers to android, web and ios devices, not "+strconv.Quote(string(to.Device.Platform)))
	}
	tok := to.Device.Token
	if len(tok) > 4096 || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "INVALID_ARGUMENT",
			"registration token "+senders.MaskToken(tok)+" is malformed")
	}
	m, err := buildMessage(to.Device, msg, time.Now())
	if err != nil {
		return senders.Result{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	ex := &exchange{stop: stop}
	name, err := s.client.Send(context.WithValue(ctx, exchangeKey{}, ex), m)
	if err == nil {
		return senders.Result{ProviderMessageID: name}, nil
	}
	var serr *senders.Error
	if ex.stopped {
		serr = ex.classify(ctx)
	} else {
		serr = Classify(err)
	}
	serr.Message = sanitize(serr.Message, tok)
	s.log.V(1).Info("fcm send failed", "device", senders.MaskToken(tok), "reason", serr.Reason, "code", serr.Code, "status", serr.StatusCode)
	return senders.Result{}, serr
}

// Classify maps an error from messaging.Client.Send to a senders.Error. It
// must see the SDK's error unwrapped: the messaging predicates use type
// assertions. The mapping is documented in docs/providers/fcm.md.
func Classify(err error) *senders.Error {
	if errors.Is(err, context.DeadlineExceeded) || errorutils.IsDeadlineExceeded(err) {
		return senders.Transient(senders.ReasonTimeout, "", "FCM call timed out")
	}
	resp := errorutils.HTTPResponse(err)
	var (
		status     int
		retryAfter time.Duration
		code       string
		msg        = err.Error()
	)
	if resp != nil {
		status = resp.StatusCode
		retryAfter = senders.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		gs, ec, gm := googleError(resp.Body)
		code = ec
		if code == "" {
			code = gs
		}
		if gm != "" {
			msg = gm
		}
	}
	e := &senders.Error{StatusCode: status, Code: code, RetryAfter: retryAfter, Message: senders.Truncate(msg, 256)}
	switch {
	case messaging.IsUnregistered(err) || messaging.IsSenderIDMismatch(err):
		e.Permanent, e.Reason = true, senders.ReasonDeviceUnregistered
	case messaging.IsThirdPartyAuthError(err):
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case messaging.IsQuotaExceeded(err) || status == http.StatusTooManyRequests:
		e.Reason = senders.ReasonRateLimited
	case messaging.IsUnavailable(err) || messaging.IsInternal(err) || status >= 500:
		e.Reason = senders.ReasonUnavailable
	case messaging.IsInvalidArgument(err) || status == http.StatusBadRequest:
		e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
		if strings.Contains(strings.ToLower(msg), "registration token") {
			e.Reason = senders.ReasonInvalidAddress
		}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case status >= 400:
		e.Permanent, e.Reason = true, senders.ReasonRejected
	case errorutils.IsUnavailable(err) || errorutils.IsUnknown(err):
		// A transport failure the SDK wrapped without a response.
		e.Reason = senders.ReasonNetwork
	default:
		// The SDK refused the message before sending it (validateMessage).
		e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
	}
	return e
}

// googleError reads Google's JSON error: status, the FCM errorCode detail and message.
func googleError(body io.Reader) (status, errorCode, message string) {
	if body == nil {
		return "", "", ""
	}
	var ge struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Details []struct {
				Type      string `json:"@type"`
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	if json.Unmarshal(b, &ge) != nil {
		return "", "", ""
	}
	for _, d := range ge.Error.Details {
		if d.Type == "type.googleapis.com/google.firebase.fcm.v1.FcmError" {
			errorCode = d.ErrorCode
		}
	}
	return ge.Error.Status, errorCode, ge.Error.Message
}

// exchange is one send's view of the transport: the SDK retries 503s and
// network errors itself (up to 4 times, for as long as two minutes), which
// would hide attempts from the dispatcher's retry policy and hold a worker.
// retryStopper records the first such failure and cancels the send's
// context, so the SDK gives up at once and the failure is classified here.
type exchange struct {
	stop       context.CancelCauseFunc
	stopped    bool
	status     int
	header     http.Header
	body       []byte
	err        error
	retryAfter time.Duration
}

type exchangeKey struct{}

var errStopRetry = errors.New("fcm: stopped the SDK's own retry")

type retryStopper struct{ base http.RoundTripper }

func (r *retryStopper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	ex, ok := req.Context().Value(exchangeKey{}).(*exchange)
	if !ok {
		return resp, err
	}
	switch {
	case err != nil:
		ex.stopped, ex.err = true, err
		ex.stop(errStopRetry)
	case resp.StatusCode == http.StatusServiceUnavailable:
		// Buffer the body before cancelling, so the SDK can still read it.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		ex.stopped, ex.status, ex.header, ex.body = true, resp.StatusCode, resp.Header, b
		ex.retryAfter = senders.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		ex.stop(errStopRetry)
	}
	return resp, err
}

// CloseIdleConnections reaches the transport through the wrappers.
func (r *retryStopper) CloseIdleConnections() {
	if c, ok := r.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// classify turns what retryStopper saw into a senders.Error.
func (ex *exchange) classify(ctx context.Context) *senders.Error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return senders.Transient(senders.ReasonTimeout, "", "FCM call timed out")
	}
	if ex.err != nil {
		var re *oauth2.RetrieveError
		if errors.As(ex.err, &re) {
			return tokenError(re)
		}
		if e := senders.Unreachable(ex.err); e != nil {
			return e
		}
		// The token exchange flattens its errors to text (x/oauth2/jwt uses %v).
		if msg := ex.err.Error(); strings.Contains(msg, "tls: failed to verify certificate") {
			return senders.Permanent(senders.ReasonAuthFailed, "TLS", "token endpoint certificate not trusted")
		}
		return senders.AsError(ex.err)
	}
	gs, ec, gm := googleError(bytes.NewReader(ex.body))
	code := ec
	if code == "" {
		code = gs
	}
	if gm == "" {
		gm = "FCM is unavailable"
	}
	return &senders.Error{Reason: senders.ReasonUnavailable, StatusCode: ex.status, Code: code, RetryAfter: ex.retryAfter, Message: senders.Truncate(gm, 256)}
}

// tokenError classifies a failed OAuth2 token exchange: Google refusing the
// service account is permanent, its outages are not.
func tokenError(re *oauth2.RetrieveError) *senders.Error {
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		// x/oauth2/jwt leaves the body unparsed: {"error", "error_description"}.
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code, desc = body.Error, body.Description
		}
	}
	e := &senders.Error{StatusCode: status, Code: code, Message: "token exchange refused the service account"}
	if desc != "" {
		e.Message += ": " + senders.Truncate(desc, 200)
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.Reason = senders.ReasonRateLimited
		e.RetryAfter = senders.ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
	case status >= 500 || status == 0:
		e.Reason, e.Message = senders.ReasonUnavailable, "token endpoint unavailable"
	default:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	}
	return e
}

func sanitize(msg, tok string) string {
	if tok == "" {
		return msg
	}
	return strings.ReplaceAll(msg, tok, senders.MaskToken(tok))
}
