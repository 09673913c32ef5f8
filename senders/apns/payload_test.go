package apns

import (
	"encoding/json"
	"testing"

	"github.com/herald-dev/herald/senders"
)

func FuzzAPNsPayload(f *testing.F) {
	f.Add("Build failed", "main is red", "default", "build", "1234", int32(1), true)
	f.Add("", "", "", "aps", "x", int32(0), false)
	f.Add("<&>", "\xff\xfe", "", "", "", int32(-1), true)
	f.Fuzz(func(t *testing.T, title, body, sound, key, value string, badge int32, withBadge bool) {
		p := &senders.Push{Title: title, Body: body, Sound: sound}
		if key != "" {
			p.Data = map[string]string{key: value}
		}
		if withBadge {
			p.Badge = &badge
		}
		b, err := buildPayload(p)
		if err != nil {
			if _, ok := err.(*senders.Error); !ok {
				t.Fatalf("error %T is not a *senders.Error", err)
			}
			return
		}
		if len(b) > MaxPayload {
			t.Fatalf("payload of %d bytes is over the limit", len(b))
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("payload is not JSON: %v", err)
		}
		if _, ok := m["aps"].(map[string]any); !ok {
			t.Fatalf("payload has no aps object: %s", b)
		}
	})
}

func TestCollapseAndID(t *testing.T) {
	for _, tt := range []struct{ in, collapse, id string }{
		{in: "short", collapse: "short", id: ""},
		{in: "0E7AB1B2-3C4D-4E5F-8A9B-0C1D2E3F4A5B", collapse: "0E7AB1B2-3C4D-4E5F-8A9B-0C1D2E3F4A5B", id: "0e7ab1b2-3c4d-4e5f-8a9b-0c1d2e3f4a5b"},
		{in: "0E7AB1B2x3C4D-4E5F-8A9B-0C1D2E3F4A5B", collapse: "0E7AB1B2x3C4D-4E5F-8A9B-0C1D2E3F4A5B", id: ""},
		{in: string(make([]byte, 63)) + "é", collapse: string(make([]byte, 63)), id: ""},
	} {
		m := &senders.Message{ID: tt.in, Push: &senders.Push{}}
		if got := collapseID(m); got != tt.collapse {
			t.Errorf("collapseID(%q) = %q, want %q", tt.in, got, tt.collapse)
		}
		if got := apnsID(tt.in); got != tt.id {
			t.Errorf("apnsID(%q) = %q, want %q", tt.in, got, tt.id)
		}
	}
}
