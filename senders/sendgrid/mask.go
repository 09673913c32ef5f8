package sendgrid

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maskEmail keeps the first letter and the domain: "a***@example.com".
func maskEmail(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return "***"
	}
	return a[:1] + "***" + a[i:]
}

var emailRe = regexp.MustCompile(`[^\s<>"'@,;:()]+@[^\s<>"'@,;:()]+`)

// scrub masks the recipient, and anything else that looks like an address,
// in provider text.
func scrub(s, rcpt string) string {
	if rcpt != "" {
		s = strings.ReplaceAll(s, rcpt, maskEmail(rcpt))
	}
	return emailRe.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "***@") {
			return m
		}
		return maskEmail(m)
	})
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
