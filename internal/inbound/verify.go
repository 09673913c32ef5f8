package inbound

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's request signature is HMAC-SHA1.
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
)

// TwilioSignature is X-Twilio-Signature for a POST to fullURL with form:
// base64(HMAC-SHA1(authToken, fullURL + each form key and value, sorted by key)).
func TwilioSignature(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyTwilio reports whether sig signs one of the URLs with form.
func VerifyTwilio(authToken string, urls []string, form url.Values, sig string) bool {
	if authToken == "" || sig == "" {
		return false
	}
	for _, u := range urls {
		if subtle.ConstantTimeCompare([]byte(TwilioSignature(authToken, u, form)), []byte(sig)) == 1 {
			return true
		}
	}
	return false
}

// VerifySendGrid checks X-Twilio-Email-Event-Webhook-Signature: a base64
// ASN.1 ECDSA signature over SHA-256 of the timestamp header and the raw body.
func VerifySendGrid(key *ecdsa.PublicKey, timestamp string, body []byte, sig string) bool {
	if key == nil || timestamp == "" || sig == "" {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write(body)
	return ecdsa.VerifyASN1(key, h.Sum(nil), raw)
}

// VerifyHubSignature checks GitHub's X-Hub-Signature-256:
// "sha256=" + hex(HMAC-SHA256(secret, body)).
func VerifyHubSignature(secret []byte, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if len(secret) == 0 || !ok {
		return false
	}
	want, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(m.Sum(nil), want)
}

// EqualToken compares a presented token with the expected one in constant time.
func EqualToken(expected []byte, got string) bool {
	return len(expected) > 0 && subtle.ConstantTimeCompare(expected, []byte(got)) == 1
}

// BearerToken is the token of an "Authorization: Bearer" header.
func BearerToken(header string) string {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
