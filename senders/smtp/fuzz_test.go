package smtp

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"

	"github.com/herald-dev/herald/senders"
)

// The message builder never panics, and nothing in the subject, bodies, id
// or display name can add a header or a recipient.
func FuzzSMTPMessage(f *testing.F) {
	f.Add("uid/0", "Subject", "text", "<p>html</p>", "a@example.com", "Alice")
	f.Add("x\r\nBcc: evil@example.com", "s\r\nBcc: evil@example.com", "\r\n.\r\n", "", "b@example.com", "Eve\r\nBcc: evil@example.com")
	f.Add("", "=?utf-8?q?x?=", ".", "\x00", "c@d.example", "\xff")
	from := mail.Address{Name: "Herald", Address: "alerts@herald.example"}
	f.Fuzz(func(t *testing.T, id, subject, text, html, addr, name string) {
		msg := &senders.Message{ID: id, Email: &senders.Email{Subject: subject, Text: text, HTML: html}}
		m, mid, err := buildMessage(from, senders.Address{Email: addr, Name: name}, msg)
		if err != nil {
			e := senders.AsError(err)
			if !e.Permanent || (e.Reason != senders.ReasonPayloadRejected && e.Reason != senders.ReasonInvalidAddress) {
				t.Fatalf("unexpected %+v", e)
			}
			return
		}
		if strings.ContainsAny(mid, "\r\n ") {
			t.Fatalf("Message-ID %q", mid)
		}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			return // refusing to write is fine; writing something else is not
		}
		pm, err := mail.ReadMessage(&buf)
		if err != nil {
			t.Fatalf("unparsable message: %v", err)
		}
		if len(pm.Header["Bcc"]) > 0 || len(pm.Header["Cc"]) > 0 {
			t.Fatalf("header injected: %v", pm.Header)
		}
		rcpts, err := m.GetRecipients()
		if err != nil || len(rcpts) != 1 || strings.Trim(rcpts[0], "<>") != addr {
			t.Fatalf("recipients %v %v", rcpts, err)
		}
		if id != "" && pm.Header.Get("Message-Id") != mid {
			t.Fatalf("Message-ID %q vs %q", pm.Header.Get("Message-Id"), mid)
		}
	})
}
