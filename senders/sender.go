// Package senders defines the one interface every provider adapter implements,
// the rendered message it sends, and the typed errors that tell the pipeline
// whether to retry. Each provider lives in its own sub-package; the static map
// from provider type to constructor is in senders/registry.
package senders

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders/egress"
)

// Sender delivers one rendered message to one address. Implementations are
// safe for concurrent use; every call is bounded by the provider's timeout.
type Sender interface {
	Send(ctx context.Context, to Address, msg *Message) (Result, error)
}

// Close releases s's resources if it holds any: some senders are an
// io.Closer (the smtp connection pool, the apns and fcm transports). Whoever
// owns a sender calls this once no send on it is in flight; closing twice is
// harmless.
func Close(s Sender) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Address is where one message goes. Exactly one field matches the channel.
type Address struct {
	Email  string
	Phone  string
	Device *v1alpha1.DeviceTarget
	// Name is the recipient's display name, if any (email To header).
	Name string
}

// Message is one rendered message; only the part for the provider's channel is set.
type Message struct {
	// ID is deterministic for (notification uid, delivery id), so a repeat after
	// a crash folds into the first: Message-ID, custom args, collapse ids.
	ID string
	// Notification identifies the source, for envelopes and logs.
	Notification NotificationRef
	Priority     v1alpha1.Priority
	// Expiration is when the message is no longer worth delivering (APNs
	// apns-expiration, FCM TTL); zero means none.
	Expiration time.Time

	Email   *Email
	SMS     *SMS
	Push    *Push
	Webhook *Webhook
}

// NotificationRef names the Notification a message belongs to. The JSON
// tags are the log provider's outbox format.
type NotificationRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
	Category  string `json:"category,omitempty"`
}

// Email is a rendered email.
type Email struct {
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// ListUnsubscribe, when set, is the one-click unsubscribe URL (RFC
	// 8058): senders add List-Unsubscribe and List-Unsubscribe-Post.
	ListUnsubscribe string `json:"listUnsubscribe,omitempty"`
}

// OneClickUnsubscribe is List-Unsubscribe-Post's value (RFC 8058).
const OneClickUnsubscribe = "List-Unsubscribe=One-Click"

// SMS is a rendered text message.
type SMS struct {
	Text string `json:"text"`
}

// Push is a rendered push notification.
type Push struct {
	Title       string            `json:"title,omitempty"`
	Body        string            `json:"body,omitempty"`
	Data        map[string]string `json:"data,omitempty"`
	Sound       string            `json:"sound,omitempty"`
	Badge       *int32            `json:"badge,omitempty"`
	CollapseKey string            `json:"collapseKey,omitempty"`
}

// Webhook is a rendered chat or webhook message. Body, when set, is valid JSON
// and is sent as is; otherwise Text goes into the provider's format.
type Webhook struct {
	Title string          `json:"title,omitempty"`
	Text  string          `json:"text,omitempty"`
	Link  string          `json:"link,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Result is what the provider said when it accepted the message.
type Result struct {
	ProviderMessageID string
}

// Reasons a send failed, for the pipeline to act on. They are the
// delivery's reason in the Notification status, so they are defined with
// the API (api/v1alpha1); these names keep the senders' code short.
const (
	ReasonDeviceUnregistered = v1alpha1.ReasonDeviceUnregistered // prune the device
	ReasonUnsubscribed       = v1alpha1.ReasonUnsubscribed       // mark the address
	ReasonInvalidAddress     = v1alpha1.ReasonInvalidAddress
	ReasonAuthFailed         = v1alpha1.ReasonAuthFailed
	ReasonPayloadRejected    = v1alpha1.ReasonPayloadRejected
	ReasonRejected           = v1alpha1.ReasonRejected // any other 4xx
	ReasonRateLimited        = v1alpha1.ReasonRateLimited
	ReasonUnavailable        = v1alpha1.ReasonUnavailable // 5xx
	ReasonTimeout            = v1alpha1.ReasonTimeout
	ReasonNetwork            = v1alpha1.ReasonNetwork
)

// Error is a classified send failure. Permanent errors are never retried.
type Error struct {
	Permanent bool
	// Reason is one of the Reason constants.
	Reason string
	// StatusCode is the provider's HTTP or SMTP status, if any.
	StatusCode int
	// Code is the provider's own error code ("Unregistered", "21211", ...).
	Code string
	// RetryAfter is the provider's Retry-After, if it sent one.
	RetryAfter time.Duration
	// Message is safe to show: no secret, token or full address.
	Message string
}

func (e *Error) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	s := fmt.Sprintf("%s error %s", kind, e.Reason)
	if e.StatusCode != 0 {
		s += fmt.Sprintf(" (status %d", e.StatusCode)
		if e.Code != "" {
			s += ", code " + e.Code
		}
		s += ")"
	} else if e.Code != "" {
		s += " (code " + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Permanent returns a permanent error.
func Permanent(reason, code, msg string) *Error {
	return &Error{Permanent: true, Reason: reason, Code: code, Message: msg}
}

// Transient returns a transient error.
func Transient(reason, code, msg string) *Error {
	return &Error{Reason: reason, Code: code, Message: msg}
}

// AsError classifies any error: a *Error is returned as is; a context deadline
// becomes a transient Timeout; a server certificate we do not trust a
// permanent AuthFailed with code "TLS" (see UntrustedCertificate); anything
// else a transient NetworkError, since an unknown failure is safer retried
// than dropped.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if e := Unreachable(err); e != nil {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Transient(ReasonTimeout, "", "provider call timed out")
	}
	if e := UntrustedCertificate(err); e != nil {
		return e
	}
	// A *url.Error carries the request URL, which for chat webhooks is a
	// secret: keep only the operation and the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return Transient(ReasonTimeout, "", "provider call timed out")
		}
		return Transient(ReasonNetwork, "", ue.Op+": "+ue.Err.Error())
	}
	return Transient(ReasonNetwork, "", err.Error())
}

// Unreachable returns a permanent error when err says the provider cannot
// be reached by any retry: the egress policy refused its address
// (EgressDenied), or its certificate is not trusted (UntrustedCertificate);
// nil otherwise. Adapters that classify in their own order call it first.
func Unreachable(err error) *Error {
	if msg, ok := egress.Denied(err); ok {
		return Permanent(egress.ReasonEgressDenied, "", msg)
	}
	return UntrustedCertificate(err)
}

// UntrustedCertificate returns a permanent AuthFailed error with code "TLS"
// when err is a server certificate that failed verification, and nil
// otherwise. Retrying cannot fix a CA the provider spec does not trust, so
// adapters that classify in their own order call this before anything that
// would call the failure transient.
func UntrustedCertificate(err error) *Error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return Permanent(ReasonAuthFailed, "TLS", "server certificate not trusted: "+cv.Err.Error())
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return Permanent(ReasonAuthFailed, "TLS", "server certificate not trusted: "+ua.Error())
	}
	return nil
}
