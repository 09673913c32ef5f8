package senders_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

func TestMaskEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "a***@example.com"},
		{"a@b.c", "a***@b.c"},
		{"odd@name@example.com", "o***@example.com"},
		{"@example.com", "***"},
		{"no-at-sign", "***"},
		{"", "***"},
	} {
		if got := senders.MaskEmail(tc.in); got != tc.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+14155550100", "+1415*****00"},
		{"+447700900123", "+4477******23"},
		{"+123456", "*******"},
		{"12345678", "12345*78"},
		{"", ""},
	} {
		if got := senders.MaskPhone(tc.in); got != tc.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskToken(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abcdef0123456789", "abcdef…"},
		{"abcdefg", "abcdef…"},
		{"abcdef", "…"},
		{"", "…"},
	} {
		if got := senders.MaskToken(tc.in); got != tc.want {
			t.Errorf("MaskToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskAddress(t *testing.T) {
	for _, tc := range []struct {
		in   senders.Address
		want string
	}{
		{senders.Address{Email: "bob@example.org", Name: "Bob"}, "b***@example.org"},
		{senders.Address{Phone: "+14155550100"}, "+1415*****00"},
		{senders.Address{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformIOS, Token: "abcdef0123456789"}}, "ios:abcdef…"},
		{senders.Address{}, ""},
	} {
		if got := senders.MaskAddress(tc.in); got != tc.want {
			t.Errorf("MaskAddress(%+v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubEmails(t *testing.T) {
	for _, tc := range []struct{ in, rcpt, want string }{
		{"550 5.1.1 <alice@example.com>: user unknown", "alice@example.com", "550 5.1.1 <a***@example.com>: user unknown"},
		{"bounced for bob@example.org and carol@example.net", "", "bounced for b***@example.org and c***@example.net"},
		{"nothing to hide", "alice@example.com", "nothing to hide"},
	} {
		if got := senders.ScrubEmails(tc.in, tc.rcpt); got != tc.want {
			t.Errorf("ScrubEmails(%q, %q) = %q, want %q", tc.in, tc.rcpt, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name, in string
		want     time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "30", 30 * time.Second},
		{"seconds with spaces", " 7 ", 7 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"capped", "999999999999999", senders.MaxRetryAfter},
		{"date ahead", date(90 * time.Second), 90 * time.Second},
		{"date past", date(-time.Minute), 0},
		{"date far ahead", date(72 * time.Hour), senders.MaxRetryAfter},
		{"garbage", "soon", 0},
		{"fraction", "1.5", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := senders.ParseRetryAfter(tc.in, now); got != tc.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
