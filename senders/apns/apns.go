// Package apns sends push notifications to iOS devices through Apple's
// HTTP/2 provider API (github.com/sideshow/apns2), with token (.p8) or
// certificate auth, and classifies Apple's answers into senders.Error.
package apns

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Sender pushes through one APNs connection pool. It is safe for concurrent
// use: HTTP/2 multiplexes pushes over the connection, and the provider token
// is regenerated under its own lock.
type Sender struct {
	client  *apns2.Client
	tr      *http.Transport
	token   *token.Token // nil with certificate auth
	topic   string
	timeout time.Duration
	log     logr.Logger
}

var _ senders.Sender = (*Sender)(nil)

// New returns a Sender for cfg. It checks cfg again, so a Config built by
// hand fails here rather than sending an empty bearer token; it does not
// connect until the first Send.
func New(cfg Config) (*Sender, error) {
	if _, err := parseEndpoint(cfg.Host); err != nil {
		return nil, err
	}
	if cfg.Topic == "" {
		return nil, senders.InvalidSpec("spec.apns.topic", "is required (the app's bundle id)")
	}
	if (cfg.AuthKey == nil) == (cfg.Certificate == nil) {
		return nil, senders.InvalidSpec("spec.apns", "exactly one of token auth (key.p8) and certificate auth (tls.crt, tls.key) is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if cfg.Certificate != nil {
		tc.Certificates = append(tc.Certificates[:0:0], *cfg.Certificate)
	}

	// APNs is HTTP/2 only; net/http's HTTP/2 with pings keeps the one
	// long-lived connection Apple asks for healthy.
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         senders.GuardedDial(cfg.Dial, cfg.Timeout),
		TLSClientConfig:     tc,
		Protocols:           &protocols,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: 4,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}
	client := &apns2.Client{
		Host: strings.TrimRight(cfg.Host, "/"),
		// The context bounds each push; this is only a backstop.
		HTTPClient: &http.Client{Transport: senders.Limited(recorder{tr}), Timeout: cfg.Timeout + time.Second, CheckRedirect: senders.NoRedirects},
	}
	s := &Sender{client: client, tr: tr, topic: cfg.Topic, timeout: cfg.Timeout, log: cfg.Log}
	if cfg.AuthKey != nil {
		if !isAppleID(cfg.TeamID) || !isAppleID(cfg.KeyID) {
			return nil, senders.InvalidSpec("spec.apns.teamID", "teamID and keyID must be 10 upper-case letters or digits")
		}
		s.token = &token.Token{AuthKey: cfg.AuthKey, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
		if _, err := s.token.Generate(); err != nil {
			return nil, senders.InvalidKey(KeyP8, "cannot sign a provider token with this key")
		}
		client.Token = s.token
	} else {
		client.Certificate = *cfg.Certificate
	}
	return s, nil
}

// Close drops idle connections; call it when the provider is reconfigured.
func (s *Sender) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Send pushes msg.Push to an ios device. The error, if any, is a *senders.Error.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	if to.Device == nil || to.Device.Token == "" {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "", "no device token")
	}
	if to.Device.Platform != v1alpha1.PlatformIOS {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, "",
			"apns delivers to ios devices only, not "+strconv.Quote(string(to.Device.Platform)))
	}
	tok := to.Device.Token
	if !validToken(tok) {
		return senders.Result{}, senders.Permanent(senders.ReasonInvalidAddress, apns2.ReasonBadDeviceToken,
			"device token "+senders.MaskToken(tok)+" is not a hex APNs token")
	}
	if msg == nil {
		return senders.Result{}, senders.Permanent(senders.ReasonPayloadRejected, "", "no message")
	}
	payload, err := buildPayload(msg.Push)
	if err != nil {
		return senders.Result{}, err
	}
	n := &apns2.Notification{
		ApnsID:      apnsID(msg.ID),
		CollapseID:  collapseID(msg),
		DeviceToken: tok,
		Topic:       s.topic,
		Expiration:  msg.Expiration,
		Priority:    apns2.PriorityHigh,
		Payload:     payload,
		PushType:    apns2.PushTypeAlert,
	}
	if msg.Priority == v1alpha1.PriorityLow {
		n.Priority = apns2.PriorityLow
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ex := &exchange{}
	resp, err := s.client.PushWithContext(context.WithValue(ctx, exchangeKey{}, ex), n)
	if err == nil && resp.Sent() {
		return senders.Result{ProviderMessageID: resp.ApnsID}, nil
	}
	var serr *senders.Error
	if err != nil {
		serr = s.transportError(err, ex, tok)
	} else {
		serr = s.rejected(resp, ex, tok)
	}
	s.log.V(1).Info("apns push failed", "device", senders.MaskToken(tok), "reason", serr.Reason, "code", serr.Code, "status", serr.StatusCode)
	return senders.Result{}, serr
}

// rejected classifies an answer Apple gave.
func (s *Sender) rejected(resp *apns2.Response, ex *exchange, tok string) *senders.Error {
	e := Classify(resp.StatusCode, resp.Reason)
	e.RetryAfter = ex.retryAfter
	e.Message = "device " + senders.MaskToken(tok) + ": " + e.Message
	if resp.StatusCode == http.StatusGone && !resp.Timestamp.IsZero() {
		e.Message += " since " + resp.Timestamp.UTC().Format(time.RFC3339)
	}
	if resp.Reason == apns2.ReasonExpiredProviderToken && s.token != nil {
		// Our token outlived Apple's hour (a clock step, a suspended
		// process): sign a fresh one for the next push.
		s.token.Lock()
		s.token.IssuedAt = 0
		s.token.Unlock()
	}
	return e
}

// transportError classifies a push that got no parsable answer.
func (s *Sender) transportError(err error, ex *exchange, tok string) *senders.Error {
	if ex.status != 0 {
		// An answer came but its body was not Apple's JSON (a proxy's HTML
		// 502, say): the status still says what kind of failure it is.
		e := Classify(ex.status, "")
		e.RetryAfter = ex.retryAfter
		e.Message = "device " + senders.MaskToken(tok) + ": " + e.Message + " (body was not APNs JSON)"
		return e
	}
	if e := senders.Unreachable(err); e != nil {
		return e
	}
	if isCertRejected(err) {
		return &senders.Error{Permanent: true, Reason: senders.ReasonAuthFailed, Code: apns2.ReasonBadCertificate,
			Message: "the gateway refused the client certificate: " + tlsAlert(err)}
	}
	e := senders.AsError(err)
	e.Message = strings.ReplaceAll(e.Message, tok, senders.MaskToken(tok))
	return e
}

// Classify maps an APNs status and reason to a senders.Error, reason first,
// then status for reasons Apple may add later. The mapping is documented in
// docs/providers/apns.md.
func Classify(status int, reason string) *senders.Error {
	e := &senders.Error{StatusCode: status, Code: reason}
	switch reason {
	case apns2.ReasonBadDeviceToken, apns2.ReasonUnregistered, apns2.ReasonExpiredToken, apns2.ReasonDeviceTokenNotForTopic:
		e.Permanent, e.Reason = true, senders.ReasonDeviceUnregistered
		e.Message = "the device token is no longer valid for this app (" + reason + ")"
	case apns2.ReasonMissingDeviceToken:
		e.Permanent, e.Reason, e.Message = true, senders.ReasonInvalidAddress, "no device token in the request"
	case apns2.ReasonInvalidProviderToken, apns2.ReasonMissingProviderToken, apns2.ReasonBadCertificate,
		apns2.ReasonBadCertificateEnvironment, apns2.ReasonForbidden:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
		e.Message = "Apple refused the credentials (" + reason + "): check teamID, keyID, key.p8 or the certificate and the environment"
	case apns2.ReasonExpiredProviderToken:
		// The next push signs a new token, so this one is worth retrying.
		e.Reason, e.Message = senders.ReasonAuthFailed, "the provider token expired; a new one is signed for the next attempt"
	case apns2.ReasonPayloadTooLarge, apns2.ReasonPayloadEmpty, apns2.ReasonBadCollapseID, apns2.ReasonBadExpirationDate,
		apns2.ReasonBadMessageID, apns2.ReasonBadPriority, apns2.ReasonInvalidPushType, apns2.ReasonDuplicateHeaders:
		e.Permanent, e.Reason, e.Message = true, senders.ReasonPayloadRejected, "Apple rejected the notification ("+reason+")"
	case apns2.ReasonBadTopic, apns2.ReasonTopicDisallowed, apns2.ReasonMissingTopic, apns2.ReasonBadPath, apns2.ReasonMethodNotAllowed:
		e.Permanent, e.Reason, e.Message = true, senders.ReasonRejected, "Apple rejected the request ("+reason+"): check spec.apns.topic"
	case apns2.ReasonTooManyRequests, apns2.ReasonTooManyProviderTokenUpdates:
		e.Reason, e.Message = senders.ReasonRateLimited, "Apple is throttling ("+reason+")"
	case apns2.ReasonInternalServerError, apns2.ReasonServiceUnavailable, apns2.ReasonShutdown:
		e.Reason, e.Message = senders.ReasonUnavailable, "APNs is unavailable ("+reason+")"
	case apns2.ReasonIdleTimeout:
		e.Reason, e.Message = senders.ReasonNetwork, "the connection idled out; a new one is opened"
	default:
		switch {
		case status == http.StatusTooManyRequests:
			e.Reason = senders.ReasonRateLimited
		case status >= 500 || status == 0:
			e.Reason = senders.ReasonUnavailable
		case status == http.StatusGone:
			e.Permanent, e.Reason = true, senders.ReasonDeviceUnregistered
		case status == http.StatusForbidden:
			e.Permanent, e.Reason = true, senders.ReasonAuthFailed
		case status == http.StatusRequestEntityTooLarge:
			e.Permanent, e.Reason = true, senders.ReasonPayloadRejected
		default:
			e.Permanent, e.Reason = true, senders.ReasonRejected
		}
		e.Message = "APNs answered " + strconv.Itoa(status)
		if reason != "" {
			e.Message += " (" + reason + ")"
		}
	}
	return e
}

// validToken accepts hex only, so a token can never reshape the request
// path; Apple judges the length.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// exchange carries what apns2 does not expose (the status and Retry-After of
// the raw response) from the transport back to Send.
type exchange struct {
	status     int
	retryAfter time.Duration
}

type exchangeKey struct{}

// recorder is the RoundTripper seam that reads Retry-After: apns2 returns
// only the JSON body.
type recorder struct{ base *http.Transport }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if resp != nil {
		if ex, ok := req.Context().Value(exchangeKey{}).(*exchange); ok {
			ex.status = resp.StatusCode
			ex.retryAfter = senders.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	}
	return resp, err
}

// CloseIdleConnections lets apns2.Client.CloseIdleConnections reach the transport.
func (r recorder) CloseIdleConnections() { r.base.CloseIdleConnections() }

// isCertRejected reports a TLS alert by which the server refused our client
// certificate: retrying cannot help.
func isCertRejected(err error) bool {
	a := tlsAlert(err)
	return a != "" && strings.Contains(a, "certificate")
}

func tlsAlert(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if i := strings.Index(msg, "remote error: tls: "); i >= 0 {
		return msg[i+len("remote error: tls: "):]
	}
	return ""
}
