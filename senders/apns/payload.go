package apns

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/herald-dev/herald/senders"
)

// MaxPayload is Apple's limit for an alert notification's JSON payload.
const MaxPayload = 4096

// maxCollapseID is Apple's limit for apns-collapse-id, in bytes.
const maxCollapseID = 64

type alert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type aps struct {
	Alert *alert `json:"alert,omitempty"`
	Badge *int32 `json:"badge,omitempty"`
	Sound string `json:"sound,omitempty"`
}

// buildPayload renders p as Apple's JSON payload: aps.alert{title, body},
// sound and badge, with custom data as top-level keys. Anything Apple would
// refuse (nothing to show, a data key named aps, more than MaxPayload bytes)
// is a permanent PayloadRejected error here, before the network.
func buildPayload(p *senders.Push) ([]byte, error) {
	if p == nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "message has no push content")
	}
	a := aps{Badge: p.Badge, Sound: p.Sound}
	if p.Title != "" || p.Body != "" {
		a.Alert = &alert{Title: p.Title, Body: p.Body}
	}
	if a.Alert == nil && a.Badge == nil && a.Sound == "" {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "PayloadEmpty", "push has no title, body, sound or badge to show")
	}
	if _, ok := p.Data["aps"]; ok {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", `data key "aps" is reserved by Apple`)
	}

	var buf bytes.Buffer
	buf.Grow(256)
	enc := json.NewEncoder(&buf)
	// Apple counts bytes: do not inflate <, > and & into \u003c escapes.
	enc.SetEscapeHTML(false)
	var top any = map[string]any{"aps": a}
	if len(p.Data) > 0 {
		m := make(map[string]any, len(p.Data)+1)
		for k, v := range p.Data {
			m[k] = v
		}
		m["aps"] = a
		top = m
	}
	if err := enc.Encode(top); err != nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "payload does not encode: "+err.Error())
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxPayload {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "PayloadTooLarge",
			"payload is "+strconv.Itoa(len(b))+" bytes, over Apple's limit of "+strconv.Itoa(MaxPayload))
	}
	return b, nil
}

// collapseID is the push's collapse key, else the message id, cut to Apple's
// 64 bytes on a rune boundary so a repeat of the same message folds on the device.
func collapseID(msg *senders.Message) string {
	id := msg.ID
	if msg.Push != nil && msg.Push.CollapseKey != "" {
		id = msg.Push.CollapseKey
	}
	return senders.Truncate(id, maxCollapseID)
}

// apnsID returns id in canonical lower-case form when it is UUID-shaped, so
// a repeat of the same message carries the same apns-id; otherwise "" and
// Apple assigns one.
func apnsID(id string) string {
	if len(id) != 36 {
		return ""
	}
	b := []byte(id)
	for i, c := range b {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			b[i] = c + ('a' - 'A')
		default:
			return ""
		}
	}
	return string(b)
}
