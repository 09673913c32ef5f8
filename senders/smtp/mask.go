package smtp

import (
	"regexp"
	"strings"
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
// in server replies: many quote the rejected mailbox.
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
