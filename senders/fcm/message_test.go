package fcm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

func FuzzFCMMessage(f *testing.F) {
	f.Add("Build failed", "main is red", "build", "1234", "default", "build-1234", uint8(0), int64(3600), true)
	f.Add("", "", "", "", "", "", uint8(1), int64(-10), false)
	f.Add("\xff", "<&>", "google.x", "v", "", "a/b", uint8(2), int64(1<<40), true)
	platforms := []v1alpha1.Platform{v1alpha1.PlatformAndroid, v1alpha1.PlatformIOS, v1alpha1.PlatformWeb}
	priorities := []v1alpha1.Priority{"", v1alpha1.PriorityLow, v1alpha1.PriorityNormal, v1alpha1.PriorityHigh, v1alpha1.PriorityCritical}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, title, body, key, value, sound, collapse string, sel uint8, ttl int64, badge bool) {
		p := &senders.Push{Title: title, Body: body, Sound: sound, CollapseKey: collapse}
		if key != "" {
			p.Data = map[string]string{key: value}
		}
		if badge {
			b := int32(sel)
			p.Badge = &b
		}
		msg := &senders.Message{
			ID:         collapse + title,
			Priority:   priorities[int(sel)%len(priorities)],
			Expiration: now.Add(time.Duration(ttl) * time.Second),
			Push:       p,
		}
		dev := &v1alpha1.DeviceTarget{Platform: platforms[int(sel)%len(platforms)], Token: "tok"}
		m, err := buildMessage(dev, msg, now)
		if err != nil {
			if _, ok := err.(*senders.Error); !ok {
				t.Fatalf("error %T is not a *senders.Error", err)
			}
			return
		}
		if n := payloadSize(m); n > MaxPayload {
			t.Fatalf("payload of %d bytes is over the limit", n)
		}
		if m.Android != nil && m.Android.TTL != nil && (*m.Android.TTL < 0 || *m.Android.TTL > maxTTL) {
			t.Fatalf("ttl %s out of range", *m.Android.TTL)
		}
		if m.APNS != nil && len(m.APNS.Headers["apns-collapse-id"]) > 64 {
			t.Fatalf("apns-collapse-id over 64 bytes")
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("message does not encode: %v", err)
		}
	})
}
