package senders

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Every adapter masks addresses and tokens the same way, so a reader can
// match a log line from one provider with an error from another.

// MaskEmail keeps the first letter and the domain: "a***@example.com".
func MaskEmail(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return "***"
	}
	return a[:1] + "***" + a[i:]
}

// MaskPhone keeps the country and area code and the last two digits:
// "+1415*****00". A number too short for that is starred out entirely.
func MaskPhone(p string) string {
	if len(p) <= 7 {
		return strings.Repeat("*", len(p))
	}
	return p[:5] + strings.Repeat("*", len(p)-7) + p[len(p)-2:]
}

// MaskToken keeps the first 6 characters of a device token: "a1b2c3…".
// A token no longer than that is shown as "…" alone.
func MaskToken(tok string) string {
	if len(tok) <= 6 {
		return "…"
	}
	return tok[:6] + "…"
}

// MaskAddress masks whichever field of a is set; a device is shown with its
// platform: "ios:a1b2c3…".
func MaskAddress(a Address) string {
	switch {
	case a.Email != "":
		return MaskEmail(a.Email)
	case a.Phone != "":
		return MaskPhone(a.Phone)
	case a.Device != nil:
		return string(a.Device.Platform) + ":" + MaskToken(a.Device.Token)
	}
	return ""
}

var emailRe = regexp.MustCompile(`[^\s<>"'@,;:()]+@[^\s<>"'@,;:()]+`)

// ScrubEmails masks rcpt, and anything else that looks like an email
// address, in provider text: servers and APIs often quote the mailbox they
// rejected.
func ScrubEmails(s, rcpt string) string {
	if rcpt != "" {
		s = strings.ReplaceAll(s, rcpt, MaskEmail(rcpt))
	}
	return emailRe.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "***@") {
			return m
		}
		return MaskEmail(m)
	})
}

// MaxRetryAfter caps what ParseRetryAfter returns: a provider asking for
// more than a day is misbehaving, and a huge delay-seconds would overflow a
// time.Duration.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (relative to now). Anything absent, unparsable, negative or in the past is
// 0, meaning the provider asked for no particular wait.
func ParseRetryAfter(header string, now time.Time) time.Duration {
	v := strings.TrimSpace(header)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
