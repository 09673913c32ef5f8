package fcm

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// Scopes that allow messages:send.
	scopeMessaging = "https://www.googleapis.com/auth/firebase.messaging"
	scopeCloud     = "https://www.googleapis.com/auth/cloud-platform"
	tokenLifetime  = time.Hour
)

// serveToken is Google's OAuth2 token endpoint for the jwt-bearer grant: the
// assertion must be an RS256 JWT signed by a key NewCredentials issued, for
// this endpoint as audience, unexpired, with a scope that can send.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != jwtBearerGrant {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	email, desc := s.verifyAssertion(r.PostForm.Get("assertion"))
	if desc != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", desc)
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(b[:])
	s.tokens.Store(tok, accessToken{email: email, expiry: time.Now().Add(tokenLifetime)})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"expires_in":   int(tokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// verifyAssertion returns the service account's email, or Google's
// error_description when the assertion is not acceptable.
func (s *Server) verifyAssertion(assertion string) (string, string) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
	}
	if fake.DecodeJWTPart(parts[0], &header) != nil || fake.DecodeJWTPart(parts[1], &claims) != nil {
		return "", "Invalid JWT."
	}
	s.mu.RLock()
	acct, ok := s.accounts[claims.Iss]
	s.mu.RUnlock()
	if !ok {
		return "", "Invalid grant: account not found"
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || header.Alg != "RS256" {
		return "", "Invalid JWT Signature."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(acct.pub, crypto.SHA256, sum[:], sig) != nil {
		return "", "Invalid JWT Signature."
	}
	if header.Kid != "" && header.Kid != acct.keyID {
		return "", "Invalid JWT Signature."
	}
	if claims.Aud != s.TokenURL() {
		return "", "Invalid JWT: Failed audience check."
	}
	now := time.Now().Unix()
	if claims.Exp < now || claims.Iat > now+300 || claims.Exp-claims.Iat > 3600 {
		return "", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	if !hasScope(claims.Scope) {
		return "", "Invalid OAuth scope or ID token audience provided."
	}
	return claims.Iss, ""
}

func hasScope(scopes string) bool {
	for _, sc := range strings.Fields(scopes) {
		if sc == scopeMessaging || sc == scopeCloud {
			return true
		}
	}
	return false
}
