package fcm

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"firebase.google.com/go/v4/messaging"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// MaxPayload is FCM's limit on a message's notification and data, in bytes.
const MaxPayload = 4096

// maxTTL is the longest time FCM stores a message for an offline device.
const maxTTL = 28 * 24 * time.Hour

// webTopic is what a Web Push Topic header may hold: the push service
// replaces a pending message with the same topic.
func webTopic(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// buildMessage renders msg for one device: notification{title, body} and
// data for every platform, then the platform's block with its collapse key,
// priority and time to live. What FCM would refuse (reserved data keys, more
// than MaxPayload bytes) is a permanent PayloadRejected error here.
func buildMessage(dev *v1alpha1.DeviceTarget, msg *senders.Message, now time.Time) (*messaging.Message, error) {
	if msg == nil || msg.Push == nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "message has no push content")
	}
	p := msg.Push
	for k := range p.Data {
		if reservedKey(k) {
			return nil, senders.Permanent(senders.ReasonPayloadRejected, "INVALID_ARGUMENT",
				"data key "+strconv.Quote(senders.Truncate(k, 64))+" is reserved by FCM")
		}
	}
	if p.Title == "" && p.Body == "" && len(p.Data) == 0 {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "push has no title, body or data")
	}
	m := &messaging.Message{Token: dev.Token}
	if p.Title != "" || p.Body != "" {
		m.Notification = &messaging.Notification{Title: p.Title, Body: p.Body}
	}
	if len(p.Data) > 0 {
		m.Data = make(map[string]string, len(p.Data))
		for k, v := range p.Data {
			m.Data[k] = v
		}
	}
	if n := payloadSize(m); n > MaxPayload {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "INVALID_ARGUMENT",
			"notification and data are "+strconv.Itoa(n)+" bytes, over FCM's limit of "+strconv.Itoa(MaxPayload))
	}

	high := msg.Priority == v1alpha1.PriorityHigh || msg.Priority == v1alpha1.PriorityCritical
	var ttl *time.Duration
	if !msg.Expiration.IsZero() {
		d := msg.Expiration.Sub(now).Truncate(time.Second)
		// Past its expiry: FCM's TTL 0 means "now or never", the closest to
		// not storing it at all.
		d = max(0, min(d, maxTTL))
		ttl = &d
	}

	switch dev.Platform {
	case v1alpha1.PlatformAndroid:
		a := &messaging.AndroidConfig{CollapseKey: p.CollapseKey, Priority: "normal", TTL: ttl}
		if high {
			a.Priority = "high"
		}
		if p.Sound != "" || p.Badge != nil {
			a.Notification = &messaging.AndroidNotification{Sound: p.Sound}
			if p.Badge != nil {
				c := int(*p.Badge)
				a.Notification.NotificationCount = &c
			}
		}
		m.Android = a
	case v1alpha1.PlatformIOS:
		h := map[string]string{"apns-priority": "10", "apns-push-type": "alert"}
		if msg.Priority == v1alpha1.PriorityLow {
			h["apns-priority"] = "5"
		}
		collapse := p.CollapseKey
		if collapse == "" {
			collapse = msg.ID
		}
		if collapse = senders.Truncate(collapse, 64); collapse != "" {
			h["apns-collapse-id"] = collapse
		}
		if ttl != nil {
			h["apns-expiration"] = strconv.FormatInt(msg.Expiration.Unix(), 10)
		}
		aps := &messaging.Aps{Sound: p.Sound}
		if m.Notification == nil && p.Sound == "" && p.Badge == nil {
			// Data only: Apple wants a background push, at priority 5.
			aps.ContentAvailable = true
			h["apns-push-type"], h["apns-priority"] = "background", "5"
		}
		if p.Badge != nil {
			b := int(*p.Badge)
			aps.Badge = &b
		}
		m.APNS = &messaging.APNSConfig{Headers: h, Payload: &messaging.APNSPayload{Aps: aps}}
	case v1alpha1.PlatformWeb:
		h := map[string]string{"Urgency": "normal"}
		switch {
		case high:
			h["Urgency"] = "high"
		case msg.Priority == v1alpha1.PriorityLow:
			h["Urgency"] = "low"
		}
		if ttl != nil {
			h["TTL"] = strconv.FormatInt(int64(*ttl/time.Second), 10)
		}
		if webTopic(p.CollapseKey) {
			h["Topic"] = p.CollapseKey
		}
		m.Webpush = &messaging.WebpushConfig{Headers: h}
	}
	return m, nil
}

// payloadSize is what FCM counts against MaxPayload: the encoded
// notification and data.
func payloadSize(m *messaging.Message) int {
	n := 0
	if m.Notification != nil {
		b, _ := json.Marshal(m.Notification)
		n += len(b)
	}
	if len(m.Data) > 0 {
		b, _ := json.Marshal(m.Data)
		n += len(b)
	}
	return n
}

// reservedKey reports data keys FCM refuses.
func reservedKey(k string) bool {
	switch k {
	case "from", "notification", "message_type":
		return true
	}
	return k == "" || strings.HasPrefix(k, "google.") || strings.HasPrefix(k, "gcm.")
}
