package render

import (
	"errors"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// FuzzRenderTemplate: no template and no params make Compile or Render
// panic, hang, or fail with anything but the package's typed errors.
func FuzzRenderTemplate(f *testing.F) {
	for _, s := range [][2]string{
		{`Hello {{ .Params.name | upper }}`, `{"name":"ada"}`},
		{`{{ range .Params.l }}{{ range $.Params.l }}{{ . }}{{ end }}{{ end }}`, `{"l":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}`},
		{`{{ $s := "ab" }}{{ range .Params.l }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ $s }}`, `{"l":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}`},
		{`{{ $s := "&" }}{{ range .Params.l }}{{ $s = html $s }}{{ end }}{{ len $s }}`, `{"l":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}`},
		{`{{ replace "" .Params.s .Params.s }}`, `{"s":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`},
		{`{{ printf "%999999d%999999d%999999d%999999d%999999d" 1 2 3 4 5 }}`, `{}`},
		{`{{ range 1000000000 }}{{ end }}`, `{}`},
		{`{{ define "a" }}{{ template "a" . }}{{ end }}{{ template "a" . }}`, `{}`},
		{`{{ date "2006-01-02" .Params.t }} {{ trunc 3 .Params.t }} {{ json .Params }}`, `{"t":"2025-01-01T00:00:00Z"}`},
		{`{"a": {{ toJson .Params.x }}}`, `{"x":[1,{"b":null}]}`},
		{`<a href="{{ .Params.u }}" onclick="f({{ .Params.u }})">{{ .Params.u }}</a>`, `{"u":"javascript:alert(1)"}`},
		{`{{ index .Params.l 5 }}{{ slice .Params.s 3 1 }}`, `{"l":[],"s":"ab"}`},
		{`{{ with $x := .Params }}{{ $x.a.b.c }}{{ end }}{{ break }}`, `{"a":1}`},
		{`{{ default }}{{ join }}{{ call .Params.f }}`, `{"f":1}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(fuzzRender)
}

func fuzzRender(t *testing.T, src, js string) {
	p, err := DecodeParams(&apiextensionsv1.JSON{Raw: []byte(js)})
	if err != nil {
		return
	}
	// One spec per channel, so a body one channel refuses (html in an
	// html body) does not hide what the others do with it.
	specs := []v1alpha1.ChannelContent{
		{Email: &v1alpha1.EmailContent{Subject: src, Text: src}},
		{Email: &v1alpha1.EmailContent{Subject: "s", HTML: src}},
		{SMS: &v1alpha1.SMSContent{Text: src}},
		{Push: &v1alpha1.PushContent{Title: src, Body: src, Data: map[string]string{"k": src}}},
		{Webhook: &v1alpha1.WebhookContent{Text: src, Body: src}},
	}
	start := time.Now()
	in := &Input{Params: p, Recipient: Recipient{Name: "r", Locale: "ko", TimeZone: "Asia/Seoul"}}
	for _, content := range specs {
		c, err := Compile(&v1alpha1.TemplateSpec{Channels: content})
		if err != nil {
			var pe ParseErrors
			if !errors.As(err, &pe) {
				t.Fatalf("Compile: untyped error %T %v", err, err)
			}
			continue
		}
		ch := c.Channels()[0]
		msg, err := c.Render(ch, in)
		if err != nil {
			var re *RenderError
			var le *LimitError
			if !errors.As(err, &re) && !errors.As(err, &le) {
				t.Fatalf("Render %s: untyped error %T %v", ch, err, err)
			}
			continue
		}
		checkRendered(t, ch, msg)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %s", d)
	}
}

func checkRendered(t *testing.T, ch v1alpha1.Channel, msg *senders.Message) {
	t.Helper()
	switch ch {
	case v1alpha1.ChannelEmail:
		if msg.Email.Subject == "" || len(msg.Email.Text) > MaxOutputBytes || len(msg.Email.HTML) > MaxOutputBytes {
			t.Fatalf("bad email %+v", msg.Email)
		}
	case v1alpha1.ChannelSMS:
		if n, _ := SMSSegments(msg.SMS.Text); n > MaxSMSSegments || n == 0 {
			t.Fatalf("sms of %d segments", n)
		}
	case v1alpha1.ChannelPush:
		if APNsPayloadSize(msg.Push) > MaxAPNsPayload || FCMPayloadSize(msg.Push) > MaxFCMPayload {
			t.Fatalf("push over the limit")
		}
	case v1alpha1.ChannelWebhook:
		if len(msg.Webhook.Body) == 0 && msg.Webhook.Text == "" && msg.Webhook.Title == "" {
			t.Fatalf("empty webhook")
		}
	}
}

// FuzzRenderPayloadSize: the push payload estimates equal encoding/json's output.
func FuzzRenderPayloadSize(f *testing.F) {
	f.Add("title", "body <&> \u2028 \xff", "key", "value\x00", "default", int32(3))
	f.Fuzz(func(t *testing.T, title, body, k, v, sound string, badge int32) {
		checkPayloadSizes(t, &senders.Push{Title: title, Body: body, Data: map[string]string{k: v}, Sound: sound, Badge: &badge})
	})
}
