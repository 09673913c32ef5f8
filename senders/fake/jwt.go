package fake

import (
	"encoding/base64"
	"encoding/json"
)

// DecodeJWTPart decodes one dot-separated part of a JWT (header or claims)
// into v, as the fakes that check signed tokens (APNs provider tokens,
// Google service-account assertions) must before verifying them.
func DecodeJWTPart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
