package fcm

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/herald-dev/herald/senders"
)

// KeyCredentials is the Secret key holding the service account's JSON key.
const KeyCredentials = "credentials.json"

// DefaultEndpoint is FCM's API base URL; the SDK appends /v1/projects/....
const DefaultEndpoint = "https://fcm.googleapis.com"

// Config is everything a Sender needs, validated.
type Config struct {
	// Dial makes connections, the token exchange's included (see
	// senders.GuardedDial): nil is the default egress policy.
	Dial senders.DialFunc
	// Name is the provider's Kind/name, for logs.
	Name string
	// ProjectID is the Firebase project messages are sent through.
	ProjectID string
	// Endpoint is the API base URL without /v1: DefaultEndpoint or spec.endpoint.
	Endpoint string
	// Credentials is the service account's credentials.json.
	Credentials []byte
	// Timeout bounds one send, the SDK's own retries included.
	Timeout time.Duration
	// TLS verifies FCM and the token endpoint (system roots plus spec.tls's CA).
	TLS *tls.Config
	Log logr.Logger
}

// String leaves the credentials out, so a logged Config leaks nothing.
func (c Config) String() string {
	return fmt.Sprintf("fcm{project %s, endpoint %s, timeout %s}", c.ProjectID, c.Endpoint, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// serviceAccount is the part of credentials.json a token exchange needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// ConfigFrom builds a Config from the provider's spec and Secret, checking
// every value before any network call.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.FCM == nil {
		return Config{}, senders.InvalidSpec("spec.fcm", "is required for type fcm")
	}
	cfg := Config{Name: pc.Name, ProjectID: pc.Spec.FCM.ProjectID, Endpoint: DefaultEndpoint, Timeout: pc.Timeout(), Log: pc.Log, Dial: pc.Dial()}
	if err := checkProjectID(cfg.ProjectID); err != nil {
		return Config{}, err
	}
	if pc.Spec.Endpoint != "" {
		ep, err := parseEndpoint(pc.Spec.Endpoint)
		if err != nil {
			return Config{}, err
		}
		cfg.Endpoint = ep
	}
	tc, err := pc.TLSConfig()
	if err != nil {
		return Config{}, err
	}
	cfg.TLS = tc
	raw, err := pc.RequireKey(KeyCredentials)
	if err != nil {
		return Config{}, err
	}
	if _, err := parseServiceAccount(raw); err != nil {
		return Config{}, err
	}
	cfg.Credentials = raw
	return cfg, nil
}

func checkProjectID(id string) error {
	if id == "" {
		return senders.InvalidSpec("spec.fcm.projectID", "is required")
	}
	// The id becomes a path segment: refuse anything that could reshape the URL.
	if strings.ContainsAny(id, "/?#%\\ \t\r\n") {
		return senders.InvalidSpec("spec.fcm.projectID", "must be a Firebase project id, not a path")
	}
	return nil
}

func parseEndpoint(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", senders.InvalidSpec("spec.endpoint", "is not an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", senders.InvalidSpec("spec.endpoint", "must not have a query or fragment")
	}
	return strings.TrimRight(s, "/"), nil
}

// parseServiceAccount checks credentials.json is a service account key the
// token exchange can use. Errors name the field, never its value.
func parseServiceAccount(raw []byte) (serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal(raw, &sa); err != nil {
		return sa, senders.InvalidKey(KeyCredentials, "is not a JSON object (expected a service account key)")
	}
	if sa.Type != "service_account" {
		return sa, senders.InvalidKey(KeyCredentials, `"type" must be "service_account"`)
	}
	if sa.ClientEmail == "" {
		return sa, senders.InvalidKey(KeyCredentials, `"client_email" is missing`)
	}
	if sa.PrivateKey == "" {
		return sa, senders.InvalidKey(KeyCredentials, `"private_key" is missing`)
	}
	if _, err := parseRSAKey([]byte(sa.PrivateKey)); err != nil {
		return sa, err
	}
	if sa.TokenURI == "" {
		return sa, senders.InvalidKey(KeyCredentials, `"token_uri" is missing`)
	}
	if u, err := url.Parse(sa.TokenURI); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return sa, senders.InvalidKey(KeyCredentials, `"token_uri" is not an absolute http(s) URL`)
	}
	return sa, nil
}

// parseRSAKey accepts what the oauth2 JWT signer accepts: PKCS#8 or PKCS#1 RSA PEM.
func parseRSAKey(p []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, senders.InvalidKey(KeyCredentials, `"private_key" is not PEM`)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, senders.InvalidKey(KeyCredentials, `"private_key" is not an RSA key`)
		}
		return rk, nil
	}
	if rk, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return rk, nil
	}
	return nil, senders.InvalidKey(KeyCredentials, `"private_key" does not parse as an RSA private key`)
}
