package unsubscribe

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var key = bytes.Repeat([]byte("k"), 32)

func TestLinks(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s, err := New(key, "https://herald.example.com/", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u := s.URL("team", "alice", "newsletter", now)
	token, ok := strings.CutPrefix(u, "https://herald.example.com/unsubscribe/")
	if !ok {
		t.Fatalf("URL %q", u)
	}
	c, err := s.Verify(token, now.Add(time.Hour))
	if err != nil || c.Namespace != "team" || c.User != "alice" || c.Category != "newsletter" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, err := s.Verify(token, now.Add(25*time.Hour)); err == nil {
		t.Error("an expired link is accepted")
	}
	other, _ := New(bytes.Repeat([]byte("x"), 32), "https://herald.example.com", time.Hour)
	if _, err := other.Verify(token, now); err == nil {
		t.Error("a link signed with another key is accepted")
	}
	// The signature cannot be moved to another user, category, namespace or expiry.
	p64, sig, _ := strings.Cut(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p64)
	for _, swap := range [][2]string{{"alice", "bob"}, {"newsletter", "alerts"}, {"team", "other"}} {
		forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(swap[0]), []byte(swap[1]), 1)) + "." + sig
		if _, err := s.Verify(forged, now); err == nil {
			t.Errorf("%s→%s is accepted", swap[0], swap[1])
		}
	}
	later := s.Token(Claims{Namespace: "team", User: "alice", Category: "newsletter", Expires: now.Add(1000 * time.Hour)})
	if _, l, _ := strings.Cut(later, "."); l == sig {
		t.Error("another expiry has the same signature")
	}
	for _, bad := range []string{"", ".", "abc", token + "x", "." + sig} {
		if _, err := s.Verify(bad, now); err == nil {
			t.Errorf("%q is accepted", bad)
		}
	}
	if _, err := New([]byte("short"), "https://h", 0); err == nil {
		t.Error("a short key is accepted")
	}
}
