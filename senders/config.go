package senders

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders/egress"
)

// DefaultTimeout bounds one provider call when the spec sets no timeout.
const DefaultTimeout = 10 * time.Second

// ProviderConfig is what every constructor receives: the provider's spec and
// the data its caller already read from the referenced Secret and CA. Each
// provider package turns it into its own typed Config, validating it, before
// any network call.
type ProviderConfig struct {
	// Name is Kind/name of the provider, for logs.
	Name string
	Spec *v1alpha1.ChannelProviderSpec
	// Secret is the data of spec.secretRef; nil when there is none.
	Secret map[string][]byte
	// CA is PEM from spec.tls.caSecretRef; nil when there is none.
	CA  []byte
	Log logr.Logger
	// OutboxDir is where the log provider appends its outbox file.
	OutboxDir string
	// Egress says where the sender may connect; nil denies every private,
	// loopback and link-local range (egress.Policy's zero value).
	Egress *egress.Policy
	// AllowInsecureTLS lets spec.tls.insecureSkipVerify take effect; the
	// manager sets it only when its operator says so.
	AllowInsecureTLS bool
	// ReceiptURL is where the provider's delivery receipts reach Herald's
	// inbound server (Twilio's StatusCallback); "" when the manager has no
	// public URL, and then no receipts are asked for.
	ReceiptURL string
}

// Dial is how the provider's connections are made: through the egress
// policy, with the provider's timeout.
func (pc ProviderConfig) Dial() DialFunc { return pc.Egress.DialContext(pc.Timeout()) }

// DialFunc makes a connection, as net.Dialer.DialContext does.
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// GuardedDial is dial, or when it is nil the default egress policy's dial:
// a sender built without one still cannot reach private ranges.
func GuardedDial(dial DialFunc, timeout time.Duration) DialFunc {
	if dial != nil {
		return dial
	}
	return (*egress.Policy)(nil).DialContext(timeout)
}

// GuardedTransport is http.DefaultTransport's settings with dial (see
// GuardedDial) and tc, reading at most MaxResponseBytes of an answer
// (Limited). It still closes its idle connections on CloseIdleConnections.
func GuardedTransport(dial DialFunc, timeout time.Duration, tc *tls.Config) http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = GuardedDial(dial, timeout)
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 100
	tr.ForceAttemptHTTP2 = true
	return Limited(tr)
}

// NoRedirects is a CheckRedirect that never follows one: a redirect could
// lead a sender to an address the egress policy would refuse by name, and
// would turn a POST into a GET.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Timeout is the spec's timeout or DefaultTimeout.
func (pc ProviderConfig) Timeout() time.Duration {
	if pc.Spec != nil && pc.Spec.Timeout != nil && pc.Spec.Timeout.Duration > 0 {
		return pc.Spec.Timeout.Duration
	}
	return DefaultTimeout
}

// TLSConfig returns the client TLS settings the spec asks for: the system
// roots plus CA, or no verification when insecureSkipVerify is set and the
// manager allows it (an InvalidSpec error when it does not).
func (pc ProviderConfig) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if pc.Spec != nil && pc.Spec.TLS != nil && pc.Spec.TLS.InsecureSkipVerify {
		if !pc.AllowInsecureTLS {
			return nil, InvalidSpec("spec.tls.insecureSkipVerify", "the manager does not allow skipping certificate checks (its operator can, with --allow-insecure-skip-verify); trust the server's CA with tls.caSecretRef instead")
		}
		cfg.InsecureSkipVerify = true //nolint:gosec // asked for explicitly, allowed by the operator
	}
	if len(pc.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pc.CA) {
			return nil, InvalidKey("tls.caSecretRef", "no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// EndpointURL is spec.endpoint, or def when the spec sets none, parsed: an
// absolute http(s) URL without a query, to which the adapter appends the
// provider's API paths.
func (pc ProviderConfig) EndpointURL(def string) (*url.URL, error) {
	endpoint := def
	if pc.Spec != nil && pc.Spec.Endpoint != "" {
		endpoint = pc.Spec.Endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, InvalidSpec("spec.endpoint", "must be an absolute http(s) URL without a query")
	}
	return u, nil
}

// HTTPClient returns an HTTP/1.1+2 client with the spec's TLS settings and
// timeout, dialling through the egress policy, following no redirect and
// reading at most MaxResponseBytes of an answer.
func (pc ProviderConfig) HTTPClient() (*http.Client, error) {
	tc, err := pc.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: GuardedTransport(pc.Dial(), pc.Timeout(), tc), Timeout: pc.Timeout(), CheckRedirect: NoRedirects}, nil
}

// ConfigError says why a provider's configuration cannot be used. Reason is
// one of v1alpha1.ReasonSecretKeyMissing, ReasonInvalidSecret or ReasonInvalidSpec,
// for the provider's Ready condition.
type ConfigError struct {
	Reason string
	// Field is the Secret key or spec field at fault.
	Field   string
	Message string
}

func (e *ConfigError) Error() string {
	switch e.Reason {
	case v1alpha1.ReasonSecretKeyMissing:
		return fmt.Sprintf("secret key %q is missing", e.Field)
	default:
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
}

// MissingKey reports a required Secret key that is absent or empty.
func MissingKey(key string) *ConfigError {
	return &ConfigError{Reason: v1alpha1.ReasonSecretKeyMissing, Field: key}
}

// InvalidKey reports a Secret key whose value does not parse. msg must not
// quote the value.
func InvalidKey(key, msg string) *ConfigError {
	return &ConfigError{Reason: v1alpha1.ReasonInvalidSecret, Field: key, Message: msg}
}

// InvalidSpec reports a spec field that cannot be used.
func InvalidSpec(field, msg string) *ConfigError {
	return &ConfigError{Reason: v1alpha1.ReasonInvalidSpec, Field: field, Message: msg}
}

// RequireKey returns the Secret's value for key, or a MissingKey error.
func (pc ProviderConfig) RequireKey(key string) ([]byte, error) {
	v := pc.Secret[key]
	if len(v) == 0 {
		return nil, MissingKey(key)
	}
	return v, nil
}

// MaxResponseBytes bounds what a sender reads of any answer: a provider (or
// whatever a tenant's endpoint points at) cannot make the manager buffer
// more. Real providers' answers are a few KiB.
const MaxResponseBytes = 1 << 20

// ErrResponseTooLarge ends a read past MaxResponseBytes.
var ErrResponseTooLarge = errors.New("the provider's answer is larger than 1 MiB")

// Limited wraps rt so that every response body ends with
// ErrResponseTooLarge past MaxResponseBytes, whoever reads it (the SDKs'
// clients included).
func Limited(rt http.RoundTripper) http.RoundTripper { return limited{rt} }

type limited struct{ base http.RoundTripper }

func (l limited) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(req)
	if err == nil && res.Body != nil {
		res.Body = &limitedBody{ReadCloser: res.Body, left: MaxResponseBytes}
	}
	return res, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrResponseTooLarge
	}
	// Read one byte past the limit to tell "exactly the limit" from "more".
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), ErrResponseTooLarge
	}
	return n, err
}

// CloseIdleConnections passes through, so closing a sender still closes
// its pooled connections.
func (l limited) CloseIdleConnections() {
	if c, ok := l.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
