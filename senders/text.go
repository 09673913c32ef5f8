package senders

import (
	"strings"
	"unicode/utf8"
)

// EmailMessageID is the Message-ID header for a Herald message id: the same
// id always gives the same header, so a resend after a crash folds into the
// first in the recipient's mailbox. The domain is the sender's (from is its
// address); characters a Message-ID cannot hold become '-'.
func EmailMessageID(id, from string) string {
	domain := "herald.dev"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var b strings.Builder
	b.WriteByte('<')
	for _, r := range id {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	b.WriteByte('@')
	b.WriteString(domain)
	b.WriteByte('>')
	return b.String()
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence:
// providers limit fields in bytes, and a broken rune can fail a whole request.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
