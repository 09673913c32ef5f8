package twilio

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maskPhone keeps enough of a number to recognise it: "+1415*****00".
func maskPhone(p string) string {
	if len(p) <= 7 {
		return strings.Repeat("*", len(p))
	}
	return p[:5] + strings.Repeat("*", len(p)-7) + p[len(p)-2:]
}

var digitsRe = regexp.MustCompile(`\+?[0-9]{7,15}`)

// scrub masks anything in provider text that looks like a phone number:
// Twilio quotes the number in some messages.
func scrub(s string) string {
	return digitsRe.ReplaceAllStringFunc(s, maskPhone)
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
