// Package unsubscribe makes and checks one-click unsubscribe links (RFC
// 8058): a URL on the inbound server that names a user and a category,
// expires, and is signed, so it cannot be forged or turned to another user
// or category. Emails of a non-critical category carry it as
// List-Unsubscribe with List-Unsubscribe-Post: List-Unsubscribe=One-Click.
package unsubscribe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// PathPrefix is where the links live on the inbound server.
const PathPrefix = "/unsubscribe/"

// DefaultTTL is how long a link works: long enough for a person to act on
// an old email, short enough that a leaked one does not last.
const DefaultTTL = 60 * 24 * time.Hour

// domain separates these signatures from any other use of the key.
const domain = "herald/unsubscribe/v1"

// Claims is what a link says.
type Claims struct {
	Namespace, User, Category string
	Expires                   time.Time
}

// Signer makes and checks links with one key. The zero value is unusable:
// build it with New.
type Signer struct {
	key       []byte
	publicURL string
	ttl       time.Duration
}

// New returns a Signer; a key shorter than 32 bytes is refused.
func New(key []byte, publicURL string, ttl time.Duration) (*Signer, error) {
	if len(key) < 32 {
		return nil, errors.New("the unsubscribe key must be at least 32 bytes")
	}
	if publicURL == "" {
		return nil, errors.New("one-click unsubscribe needs the inbound server's public URL")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Signer{key: append([]byte(nil), key...), publicURL: strings.TrimSuffix(publicURL, "/"), ttl: ttl}, nil
}

// URL is the link for user (in namespace) and category, valid from now.
func (s *Signer) URL(namespace, user, category string, now time.Time) string {
	return s.publicURL + PathPrefix + s.Token(Claims{Namespace: namespace, User: user, Category: category, Expires: now.Add(s.ttl)})
}

// Token is the signed, URL-safe form of c.
func (s *Signer) Token(c Claims) string {
	payload := strings.Join([]string{c.Namespace, c.User, c.Category, strconv.FormatInt(c.Expires.Unix(), 10)}, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.sign(payload))
}

func (s *Signer) sign(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(domain + "\x00" + payload))
	return m.Sum(nil)
}

// ErrInvalid: the token is malformed, forged or expired; the caller is
// told no more than that.
var ErrInvalid = errors.New("invalid or expired unsubscribe link")

// Verify checks a token and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	p64, s64, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrInvalid
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, s.sign(string(payload))) {
		return Claims{}, ErrInvalid
	}
	parts := strings.Split(string(payload), "\x00")
	if len(parts) != 4 {
		return Claims{}, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return Claims{}, ErrInvalid
	}
	c := Claims{Namespace: parts[0], User: parts[1], Category: parts[2], Expires: time.Unix(exp, 0)}
	if len(validation.IsDNS1123Label(c.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(c.User)) > 0 || c.Category == "" {
		return Claims{}, ErrInvalid
	}
	return c, nil
}
