package senders_test

import (
	"testing"

	"github.com/herald-dev/herald/senders"
)

func TestEmailMessageID(t *testing.T) {
	for _, tc := range []struct{ id, from, want string }{
		{"uid/0", "a@b.example", "<uid/0@b.example>"},
		{"a b<c>@d", "a@b.example", "<a-b-c--d@b.example>"},
		{"ünïcode-ok-99", "a@b.example", "<-n-code-ok-99@b.example>"},
		{"uid/0", "no-domain@", "<uid/0@herald.dev>"},
		{"uid/0", "", "<uid/0@herald.dev>"},
	} {
		if got := senders.EmailMessageID(tc.id, tc.from); got != tc.want {
			t.Errorf("EmailMessageID(%q, %q) = %q, want %q", tc.id, tc.from, got, tc.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"héllo", 2, "h"}, // é is two bytes: not split
		{"héllo", 3, "hé"},
		{"日本", 4, "日"},
		{"日本", 0, ""},
	} {
		if got := senders.Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
