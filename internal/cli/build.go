package cli

import (
	"encoding/json"
	"io"
	"maps"
	"os"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// message is what `send` was asked to send, as its flags say.
type message struct {
	name, template       string
	params               []string // key=value
	paramsFile           string
	emailSubject, text   string
	sms                  string
	pushTitle, pushBody  string
	webhookText          string
	to                   []string
	selector             string
	channels             []string
	category, priority   string
	sendAt, expiresAfter string
	delivery             string
	idempotencyKey       string
	keySet               bool // --idempotency-key given, even empty (which turns the CI default off)
	ttl                  int32
	ttlSet               bool
	stdin                io.Reader // for --params-file -
}

// notification builds the Notification m describes. Errors name the flag;
// what only the API server can judge (a phone number's form, a known
// channel) is left to it, so its message is the one users see.
func (m *message) notification(ns string, now time.Time, getenv func(string) string) (*v1alpha1.Notification, error) {
	n := &v1alpha1.Notification{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Notification"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: m.name},
	}
	s := &n.Spec
	if m.name == "" {
		n.GenerateName = "herald-"
		if m.template != "" {
			n.GenerateName = m.template + "-"
		}
	}
	content := m.content()
	switch {
	case m.template != "" && content != nil:
		return nil, invalidf("--template and the inline content flags (--text, --sms, --push-body, ...) exclude each other")
	case m.template != "":
		s.TemplateRef = &v1alpha1.LocalObjectReference{Name: m.template}
	case content != nil:
		s.Content = content
	default:
		return nil, invalidf("nothing to send: give --template, or inline content (--email-subject with --text, --sms, --push-body, --webhook-text)")
	}
	params, err := m.paramsJSON()
	if err != nil {
		return nil, err
	}
	s.Params = params
	for _, to := range m.to {
		for _, one := range strings.Split(to, ",") {
			r, err := parseRecipient(strings.TrimSpace(one))
			if err != nil {
				return nil, err
			}
			s.Recipients = append(s.Recipients, r)
		}
	}
	if m.selector != "" {
		sel, err := metav1.ParseToLabelSelector(m.selector)
		if err != nil {
			return nil, invalidf("--selector: %v", err)
		}
		s.RecipientSelector = sel
	}
	if len(s.Recipients) == 0 && s.RecipientSelector == nil {
		return nil, invalidf("no recipients: give --to (user:NAME, email:ADDR, phone:+E164, webhook:PROVIDER, device:PLATFORM:TOKEN) or --selector")
	}
	for _, c := range m.channels {
		for _, one := range strings.Split(c, ",") {
			s.Channels = append(s.Channels, v1alpha1.Channel(strings.TrimSpace(one)))
		}
	}
	s.Category = m.category
	s.Priority = v1alpha1.Priority(m.priority)
	s.Delivery = v1alpha1.DeliveryMode(m.delivery)
	if m.sendAt != "" {
		t, err := parseSendAt(m.sendAt, now)
		if err != nil {
			return nil, err
		}
		s.SendAt = &metav1.Time{Time: t}
	}
	if m.expiresAfter != "" {
		d, err := time.ParseDuration(m.expiresAfter)
		if err != nil {
			return nil, invalidf("--expires-after: %v", err)
		}
		s.ExpiresAfter = &metav1.Duration{Duration: d}
	}
	if m.ttlSet {
		s.TTLSecondsAfterFinished = &m.ttl
	}
	s.IdempotencyKey = m.idempotencyKey
	if !m.keySet {
		s.IdempotencyKey = CIKey(getenv, s)
	}
	return n, nil
}

// content is the inline content the flags give, nil when none.
func (m *message) content() *v1alpha1.ChannelContent {
	var c v1alpha1.ChannelContent
	if m.emailSubject != "" || m.text != "" {
		c.Email = &v1alpha1.EmailContent{Subject: m.emailSubject, Text: m.text}
	}
	if m.sms != "" {
		c.SMS = &v1alpha1.SMSContent{Text: m.sms}
	}
	if m.pushTitle != "" || m.pushBody != "" {
		c.Push = &v1alpha1.PushContent{Title: m.pushTitle, Body: m.pushBody}
	}
	if m.webhookText != "" {
		c.Webhook = &v1alpha1.WebhookContent{Text: m.webhookText}
	}
	if c == (v1alpha1.ChannelContent{}) {
		return nil
	}
	return &c
}

// paramsJSON merges --params-file (a JSON object; "-" reads stdin) with
// --param key=value pairs, which win.
func (m *message) paramsJSON() (*apiextensionsv1.JSON, error) {
	params := map[string]any{}
	if m.paramsFile != "" {
		var b []byte
		var err error
		if m.paramsFile == "-" {
			b, err = io.ReadAll(m.stdin)
		} else {
			b, err = os.ReadFile(m.paramsFile)
		}
		if err != nil {
			return nil, invalidf("--params-file: %v", err)
		}
		if err := json.Unmarshal(b, &params); err != nil {
			return nil, invalidf("--params-file %s: not a JSON object: %v", m.paramsFile, err)
		}
	}
	flags := map[string]any{}
	for _, kv := range m.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, invalidf("--param %q: want key=value", kv)
		}
		flags[k] = v
	}
	maps.Copy(params, flags)
	if len(params) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, invalidf("params: %v", err)
	}
	return &apiextensionsv1.JSON{Raw: b}, nil
}

// parseRecipient reads KIND:VALUE (user:alice, email:a@example.com,
// phone:+14155550100, webhook:team-chat, device:ios:TOKEN). Without a kind,
// an address with @ is an email, one starting with + a phone, anything
// else a user.
func parseRecipient(s string) (v1alpha1.Recipient, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok {
		switch {
		case strings.Contains(s, "@"):
			kind, value = "email", s
		case strings.HasPrefix(s, "+"):
			kind, value = "phone", s
		default:
			kind, value = "user", s
		}
	}
	if value == "" {
		return v1alpha1.Recipient{}, invalidf("--to %q: empty %s", s, kind)
	}
	switch kind {
	case "user":
		return v1alpha1.Recipient{User: value}, nil
	case "email":
		return v1alpha1.Recipient{Email: value}, nil
	case "phone", "sms":
		return v1alpha1.Recipient{Phone: value}, nil
	case "webhook":
		return v1alpha1.Recipient{Webhook: value}, nil
	case "device":
		platform, token, ok := strings.Cut(value, ":")
		if !ok || token == "" {
			return v1alpha1.Recipient{}, invalidf("--to device: want device:PLATFORM:TOKEN (platform ios, android or web)")
		}
		return v1alpha1.Recipient{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.Platform(platform), Token: token}}, nil
	}
	return v1alpha1.Recipient{}, invalidf("--to: unknown kind %q: want user:, email:, phone:, webhook: or device:", kind)
}

// parseSendAt reads an RFC 3339 time or a delay from now ("10m", "+1h").
func parseSendAt(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "+")); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, invalidf("--send-at %q: want an RFC 3339 time (2026-12-24T18:00:00Z) or a delay (+10m)", s)
}
