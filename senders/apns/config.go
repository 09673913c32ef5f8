package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/sideshow/apns2"

	"github.com/herald-dev/herald/senders"
)

// Secret keys.
const (
	// KeyP8 holds the token-auth signing key, as downloaded from Apple (PKCS#8 PEM).
	KeyP8 = "key.p8"
	// KeyCert and KeyKey hold the certificate-auth client certificate and its key (PEM).
	KeyCert = "tls.crt"
	KeyKey  = "tls.key"
)

// Environments of spec.apns.environment.
const (
	EnvProduction  = "production"
	EnvDevelopment = "development"
)

// Config is everything a Sender needs, validated. Exactly one of AuthKey
// (token auth) and Certificate (certificate auth) is set.
type Config struct {
	// Name is the provider's Kind/name, for logs.
	Name string
	// Dial makes connections (see senders.GuardedDial): nil is the default
	// egress policy.
	Dial senders.DialFunc
	// Host is the gateway's base URL: Apple's production or development host,
	// or spec.endpoint.
	Host string
	// Topic is the app's bundle id (apns-topic).
	Topic string
	// Timeout bounds one push.
	Timeout time.Duration
	// TLS verifies the gateway (system roots plus spec.tls.caSecretRef).
	TLS *tls.Config

	// TeamID, KeyID and AuthKey sign provider tokens (token auth).
	TeamID  string
	KeyID   string
	AuthKey *ecdsa.PrivateKey

	// Certificate is the client certificate (certificate auth).
	Certificate *tls.Certificate

	Log logr.Logger
}

// String leaves the key out, so a logged Config leaks nothing.
func (c Config) String() string {
	auth := "certificate"
	if c.AuthKey != nil {
		auth = "token(team " + c.TeamID + ", key " + c.KeyID + ")"
	}
	return fmt.Sprintf("apns{host %s, topic %s, auth %s, timeout %s}", c.Host, c.Topic, auth, c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// ConfigFrom builds a Config from the provider's spec and Secret, checking
// every value before any network call. Token auth is chosen when
// spec.apns.teamID/keyID are set, certificate auth otherwise.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.APNs == nil {
		return Config{}, senders.InvalidSpec("spec.apns", "is required for type apns")
	}
	a := pc.Spec.APNs
	cfg := Config{Name: pc.Name, Topic: strings.TrimSpace(a.Topic), Timeout: pc.Timeout(), Log: pc.Log, Dial: pc.Dial()}
	if cfg.Topic == "" {
		return Config{}, senders.InvalidSpec("spec.apns.topic", "is required (the app's bundle id)")
	}
	switch a.Environment {
	case "", EnvProduction:
		cfg.Host = apns2.HostProduction
	case EnvDevelopment:
		cfg.Host = apns2.HostDevelopment
	default:
		return Config{}, senders.InvalidSpec("spec.apns.environment", `must be "production" or "development"`)
	}
	if pc.Spec.Endpoint != "" {
		host, err := parseEndpoint(pc.Spec.Endpoint)
		if err != nil {
			return Config{}, err
		}
		cfg.Host = host
	}
	tc, err := pc.TLSConfig()
	if err != nil {
		return Config{}, err
	}
	cfg.TLS = tc

	switch {
	case a.TeamID != "" || a.KeyID != "":
		if !isAppleID(a.TeamID) {
			return Config{}, senders.InvalidSpec("spec.apns.teamID", "must be 10 upper-case letters or digits")
		}
		if !isAppleID(a.KeyID) {
			return Config{}, senders.InvalidSpec("spec.apns.keyID", "must be 10 upper-case letters or digits")
		}
		raw, err := pc.RequireKey(KeyP8)
		if err != nil {
			return Config{}, err
		}
		key, err := ParseAuthKey(raw)
		if err != nil {
			return Config{}, err
		}
		cfg.TeamID, cfg.KeyID, cfg.AuthKey = a.TeamID, a.KeyID, key
	case len(pc.Secret[KeyP8]) > 0:
		return Config{}, senders.InvalidSpec("spec.apns.teamID", "teamID and keyID are required for token auth with key.p8")
	default:
		crt, err := pc.RequireKey(KeyCert)
		if err != nil {
			return Config{}, err
		}
		key, err := pc.RequireKey(KeyKey)
		if err != nil {
			return Config{}, err
		}
		cert, err := ParseCertificate(crt, key, time.Now())
		if err != nil {
			return Config{}, err
		}
		cfg.Certificate = &cert
	}
	return cfg, nil
}

// parseEndpoint accepts an https base URL: APNs is HTTP/2 over TLS only.
func parseEndpoint(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", senders.InvalidSpec("spec.endpoint", "is not an absolute URL")
	}
	if u.Scheme != "https" {
		return "", senders.InvalidSpec("spec.endpoint", "must be https: APNs speaks HTTP/2 over TLS only")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", senders.InvalidSpec("spec.endpoint", "must not have a query or fragment")
	}
	return strings.TrimRight(s, "/"), nil
}

// ParseAuthKey parses a .p8 token-auth key: PKCS#8 PEM holding an EC P-256
// key (ES256), the only form Apple issues and apns2 accepts. Errors never
// quote the key.
func ParseAuthKey(p8 []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(p8)
	if block == nil {
		return nil, senders.InvalidKey(KeyP8, "is not PEM (expected the .p8 file Apple issued)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, senders.InvalidKey(KeyP8, "is not a PKCS#8 private key (expected the .p8 file Apple issued)")
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, senders.InvalidKey(KeyP8, fmt.Sprintf("is a %T, not an EC key", k))
	}
	if ec.Curve != elliptic.P256() {
		return nil, senders.InvalidKey(KeyP8, "must be an EC P-256 key (ES256), not "+ec.Curve.Params().Name)
	}
	return ec, nil
}

// ParseCertificate parses a certificate-auth pair and checks it is valid at now.
func ParseCertificate(certPEM, keyPEM []byte, now time.Time) (tls.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, senders.InvalidKey(KeyCert, "is not a PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tls.Certificate{}, senders.InvalidKey(KeyCert, "certificate does not parse")
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, senders.InvalidKey(KeyCert, "certificate expired at "+leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, senders.InvalidKey(KeyCert, "certificate is not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, senders.InvalidKey(KeyKey, "private key does not parse or does not match tls.crt")
	}
	return cert, nil
}

func isAppleID(s string) bool {
	if len(s) != 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
