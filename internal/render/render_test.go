package render

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

func ptr[T any](v T) *T { return &v }

func params(t testing.TB, js string) Params {
	t.Helper()
	p, err := DecodeParams(&apiextensionsv1.JSON{Raw: []byte(js)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func compile(t testing.TB, spec *v1alpha1.TemplateSpec) *Compiled {
	t.Helper()
	c, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRenderChannels(t *testing.T) {
	in := &Input{
		Params:       params(t, `{"name":"<Ada>","build":1234,"ok":false,"tags":["a","b"],"url":"https://ci.example.com/b/1234"}`),
		Recipient:    Recipient{Name: "ada", Locale: "en", TimeZone: "Europe/Berlin"},
		Notification: Notification{Name: "build-1234", Namespace: "ci", Category: "build", UID: "uid-1"},
	}
	tests := []struct {
		name    string
		content v1alpha1.ChannelContent
		ch      v1alpha1.Channel
		want    senders.Message
	}{
		{
			name: "email: text is not escaped, html is",
			content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{
				Subject: "  Build {{ .Params.build }} for {{ .Recipient.Name }}\n",
				Text:    "Hi {{ .Params.name }}, see {{ .Params.url }}",
				HTML:    `<p>Hi {{ .Params.name }}</p><a href="{{ .Params.url }}">log</a>`,
			}},
			ch: v1alpha1.ChannelEmail,
			want: senders.Message{Email: &senders.Email{
				Subject: "Build 1234 for ada",
				Text:    "Hi <Ada>, see https://ci.example.com/b/1234",
				HTML:    `<p>Hi &lt;Ada&gt;</p><a href="https://ci.example.com/b/1234">log</a>`,
			}},
		},
		{
			name:    "email: html only",
			content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: "<b>{{ .Notification.Name }}</b>"}},
			ch:      v1alpha1.ChannelEmail,
			want:    senders.Message{Email: &senders.Email{Subject: "s", HTML: "<b>build-1234</b>"}},
		},
		{
			name:    "sms",
			content: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "{{ .Notification.Namespace }}: build {{ .Params.build }} {{ if .Params.ok }}passed{{ else }}failed{{ end }}"}},
			ch:      v1alpha1.ChannelSMS,
			want:    senders.Message{SMS: &senders.SMS{Text: "ci: build 1234 failed"}},
		},
		{
			name:    "sms: static text",
			content: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "hello {{/* a comment */}}world"}},
			ch:      v1alpha1.ChannelSMS,
			want:    senders.Message{SMS: &senders.SMS{Text: "hello world"}},
		},
		{
			name: "push: templated fields, static sound and badge, collapse key defaults to uid",
			content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{
				Title: "Build {{ .Params.build }}",
				Body:  "{{ join \",\" .Params.tags }}",
				Data:  map[string]string{"url": "{{ .Params.url }}", "kind": "build", "empty": ""},
				Sound: "default",
				Badge: ptr(int32(3)),
			}},
			ch: v1alpha1.ChannelPush,
			want: senders.Message{Push: &senders.Push{
				Title: "Build 1234", Body: "a,b",
				Data:  map[string]string{"url": "https://ci.example.com/b/1234", "kind": "build", "empty": ""},
				Sound: "default", Badge: ptr(int32(3)), CollapseKey: "uid-1",
			}},
		},
		{
			name:    "push: explicit collapse key",
			content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: "b", CollapseKey: "builds"}},
			ch:      v1alpha1.ChannelPush,
			want:    senders.Message{Push: &senders.Push{Body: "b", CollapseKey: "builds"}},
		},
		{
			name:    "webhook: text",
			content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: "*{{ .Params.name }}* failed"}},
			ch:      v1alpha1.ChannelWebhook,
			want:    senders.Message{Webhook: &senders.Webhook{Text: "*<Ada>* failed"}},
		},
		{
			name: "webhook: title, text and link for the chat formats",
			content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Title: "Build {{ .Params.build }} failed",
				Text: "{{ .Params.name }} broke it", Link: "https://ci.example/{{ .Params.build }}"}},
			ch:   v1alpha1.ChannelWebhook,
			want: senders.Message{Webhook: &senders.Webhook{Title: "Build 1234 failed", Text: "<Ada> broke it", Link: "https://ci.example/1234"}},
		},
		{
			name:    "webhook: JSON body built with toJson",
			content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Body: `{"who": {{ toJson .Params.name }}, "tags": {{ json .Params.tags }}, "n": {{ .Params.build }}}`}},
			ch:      v1alpha1.ChannelWebhook,
			want:    senders.Message{Webhook: &senders.Webhook{Body: json.RawMessage(`{"who": "<Ada>", "tags": ["a","b"], "n": 1234}`)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compile(t, &v1alpha1.TemplateSpec{Channels: tt.content})
			got, err := c.Render(tt.ch, in)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Notification = senders.NotificationRef{Namespace: "ci", Name: "build-1234", UID: "uid-1", Category: "build"}
			if !reflect.DeepEqual(*got, want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				t.Fatalf("got  %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	p := params(t, `{"s":"  hello wörld  ","name":"ada lovelace","list":["x",1,true,null],"n":1000000,"f":2.5,"big":123456789012345678901234,
		"when":"2025-03-30T00:30:00Z","unix":1743301800,"empty":"","zero":0,"obj":{"b":1,"a":"<&>"},"q":"a b&c"}`)
	tests := []struct {
		src, want string
		tz        string
	}{
		{src: `{{ .Params.n }} {{ .Params.f }} {{ .Params.big }}`, want: "1000000 2.5 123456789012345678901234"},
		{src: `{{ upper .Params.name }}|{{ .Params.name | lower }}|{{ title .Params.name }}`, want: "ADA LOVELACE|ada lovelace|Ada Lovelace"},
		{src: `[{{ trim .Params.s }}]`, want: "[hello wörld]"},
		{src: `{{ trunc 9 .Params.s }}|{{ trunc 100 "ab" }}|{{ trunc 0 "ab" }}`, want: "  hello w|ab|"},
		{src: `{{ trunc 3 "wörld" }}`, want: "wör"},
		{src: `{{ join ", " .Params.list }}`, want: "x, 1, true, "},
		{src: `{{ replace " " "-" .Params.name }}`, want: "ada-lovelace"},
		{src: `{{ default "none" .Params.empty }}|{{ .Params.zero | default 7 }}|{{ default "none" .Params.name }}|{{ default "x" (index .Params "absent") }}`, want: "none|7|ada lovelace|x"},
		{src: `{{ date "2006-01-02 15:04 MST" .Params.when }}`, want: "2025-03-30 00:30 UTC"},
		// Europe/Berlin switches to CEST at 01:00 UTC that night.
		{src: `{{ date "2006-01-02 15:04 MST" .Params.when }}`, tz: "Europe/Berlin", want: "2025-03-30 01:30 CET"},
		{src: `{{ date "15:04 MST" .Params.unix }}`, tz: "Europe/Berlin", want: "04:30 CEST"},
		{src: `{{ date "15:04" .Params.when }}`, tz: "Not/AZone", want: "00:30"},
		{src: `{{ urlquery .Params.q }}`, want: "a+b%26c"},
		{src: `{{ html .Params.q }}|{{ js "it's" }}`, want: "a b&amp;c|it\\'s"},
		{src: `{{ json .Params.obj }}|{{ toJson .Params.list }}|{{ json "<&>" }}`, want: `{"a":"<&>","b":1}|["x",1,true,null]|"<&>"`},
		{src: `{{ printf "%05d|%-4s|%.1f" .Params.n "ab" .Params.f }}`, want: "1000000|ab  |2.5"},
		{src: `{{ print "a" 1 }}|{{ println "b" }}`, want: "a1|b\n"},
		{src: `{{ len .Params.list }} {{ index .Params.list 0 }} {{ if eq .Params.n 1000000 }}eq{{ end }} {{ slice "abc" 1 }}`, want: "4 x eq bc"},
		{src: `{{ range $i, $e := .Params.list }}{{ if $i }},{{ end }}{{ $e }}{{ end }}`, want: "x,1,true,<no value>"},
		{src: `{{ with .Params.obj }}{{ .a }}{{ end }}`, want: "<&>"},
		{src: `{{ .Recipient.Name }}/{{ .Recipient.Locale }}/{{ .Recipient.TimeZone }}/{{ .Notification.Category }}`, tz: "Asia/Seoul", want: "r/ko/Asia/Seoul/c"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			c := compile(t, &v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: tt.src}}})
			in := &Input{Params: p, Recipient: Recipient{Name: "r", Locale: "ko", TimeZone: tt.tz}, Notification: Notification{Category: "c"}}
			got, err := c.Render(v1alpha1.ChannelWebhook, in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Webhook.Text != tt.want {
				t.Fatalf("got %q, want %q", got.Webhook.Text, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	p := params(t, `{"list":[1],"obj":{},"s":"x"}`)
	tests := []struct {
		src              string
		line, col        int
		msg              string
		wantRenderErrMsg bool
	}{
		{src: "ok\n  {{ .Params.missing }}", line: 2, col: 12, msg: `map has no entry for key "missing"`},
		{src: `{{ default "x" .Params.absent }}`, msg: `map has no entry for key "absent"`},
		{src: `{{ upper .Params.list }}`, msg: "upper: expects text, a number or a boolean, got a list (format lists and objects with json)"},
		{src: `{{ trunc -1 .Params.s }}`, msg: "negative length"},
		{src: `{{ date "2006" "yesterday" }}`, msg: `"yesterday" is not an RFC 3339 time`},
		{src: `{{ date "2006" .Params.obj }}`, msg: "got an object"},
		{src: `{{ join "," .Params.s }}`, msg: "join: expects a list, got text"},
		{src: `{{ printf "%*d" 5 .Params.s }}`, msg: "* widths are not supported"},
		{src: `{{ printf "%v" .Params.obj }}`, msg: "got an object"},
		{src: `{{ upper }}`, msg: "wrong number of args for upper: want 1 got 0"},
		{src: `{{ upper "a" "b" }}`, msg: "wrong number of args for upper: want 1 got 2"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			c := compile(t, &v1alpha1.TemplateSpec{Locales: map[string]v1alpha1.ChannelContent{"ko": {SMS: &v1alpha1.SMSContent{Text: tt.src}}}})
			_, err := c.Render(v1alpha1.ChannelSMS, &Input{Params: p, Recipient: Recipient{Locale: "ko-KR"}})
			var re *RenderError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a RenderError", err)
			}
			if re.Channel != v1alpha1.ChannelSMS || re.Locale != "ko" || re.Field != "text" {
				t.Fatalf("wrong location: %+v", re)
			}
			if tt.line != 0 && (re.Line != tt.line || re.Column != tt.col) {
				t.Fatalf("at %d:%d, want %d:%d (%v)", re.Line, re.Column, tt.line, tt.col, err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), `sms.text (locale "ko")`) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestLocaleFallback(t *testing.T) {
	body := func(s string) v1alpha1.ChannelContent {
		return v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: s}, Email: &v1alpha1.EmailContent{Subject: s, Text: s}}
	}
	spec := &v1alpha1.TemplateSpec{
		Channels: body("default"),
		Locales: map[string]v1alpha1.ChannelContent{
			"pt":      body("pt"),
			"pt-BR":   body("pt-BR"),
			"zh-Hant": body("zh-Hant"),
			// ko only translates push; everything else falls back per channel.
			"ko": {Push: &v1alpha1.PushContent{Body: "ko push"}},
		},
	}
	c := compile(t, spec)
	tests := []struct {
		locale string
		ch     v1alpha1.Channel
		want   string // rendered text, or "" for ErrNoContent
		block  string
	}{
		{"pt-BR", v1alpha1.ChannelSMS, "pt-BR", "pt-br"},
		{"pt-br", v1alpha1.ChannelSMS, "pt-BR", "pt-br"},
		{"pt_BR", v1alpha1.ChannelSMS, "pt-BR", "pt-br"},
		{"pt-PT", v1alpha1.ChannelSMS, "pt", "pt"},
		{"pt", v1alpha1.ChannelEmail, "pt", "pt"},
		{"zh-Hant-TW", v1alpha1.ChannelSMS, "zh-Hant", "zh-hant"},
		{"zh-Hans", v1alpha1.ChannelSMS, "default", ""},
		{"de", v1alpha1.ChannelSMS, "default", ""},
		{"", v1alpha1.ChannelSMS, "default", ""},
		{"ko", v1alpha1.ChannelPush, "ko push", "ko"},
		{"ko-KR", v1alpha1.ChannelEmail, "default", ""},
		{"en", v1alpha1.ChannelPush, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.locale+"/"+string(tt.ch), func(t *testing.T) {
			if got := c.LocaleFor(tt.locale, tt.ch); got != tt.block {
				t.Errorf("LocaleFor = %q, want %q", got, tt.block)
			}
			msg, err := c.Render(tt.ch, &Input{Recipient: Recipient{Locale: tt.locale}})
			if tt.want == "" {
				if !errors.Is(err, ErrNoContent) {
					t.Fatalf("got %v, want ErrNoContent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch tt.ch {
			case v1alpha1.ChannelSMS:
				got = msg.SMS.Text
			case v1alpha1.ChannelEmail:
				got = msg.Email.Subject
			case v1alpha1.ChannelPush:
				got = msg.Push.Body
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got, want := c.Channels(), []v1alpha1.Channel{v1alpha1.ChannelPush, v1alpha1.ChannelSMS, v1alpha1.ChannelEmail}; !reflect.DeepEqual(got, want) {
		t.Errorf("Channels() = %v, want %v", got, want)
	}
}

func TestLimits(t *testing.T) {
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name    string
		content v1alpha1.ChannelContent
		ch      v1alpha1.Channel
		params  string
		limit   Limit
		field   string
		actual  int
		max     int
		msg     string
	}{
		{name: "subject required", content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "{{ .Params.s }} ", Text: "t"}},
			ch: v1alpha1.ChannelEmail, params: `{"s":""}`, limit: LimitRequired, field: "subject", msg: "email.subject (default): rendered empty"},
		{name: "subject single line", content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "a{{ .Params.s }}b", Text: "t"}},
			ch: v1alpha1.ChannelEmail, params: `{"s":"\r\nBcc: x@example.com\n"}`, limit: LimitSingleLine, field: "subject", actual: 3, max: 1, msg: "single line"},
		{name: "email body required", content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", Text: "{{ .Params.s }}", HTML: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelEmail, params: `{"s":""}`, limit: LimitRequired, field: "text/html"},
		{name: "sms required", content: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelSMS, params: `{"s":" "}`, limit: LimitRequired, field: "text"},
		{name: "sms 11 GSM segments", content: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelSMS, params: `{"s":"` + strings.Repeat("a", 1531) + `"}`, limit: LimitSMSSegments, field: "text", actual: 11, max: 10,
			msg: "sms.text (default): text needs 11 SMS segments (GSM-7), limit 10"},
		{name: "sms 11 UCS-2 segments", content: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelSMS, params: `{"s":"` + strings.Repeat("한", 671) + `"}`, limit: LimitSMSSegments, field: "text", actual: 11, max: 10, msg: "UCS-2"},
		{name: "push body required", content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelPush, params: `{"s":""}`, limit: LimitRequired, field: "body"},
		{name: "APNs payload", content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Title: "t", Body: "{{ .Params.s }}", Sound: "default"}},
			ch: v1alpha1.ChannelPush, params: `{"s":"` + big + `"}`, limit: LimitAPNsPayload, field: "payload", actual: 5059, max: 4096,
			msg: "push.payload (default): APNs payload is 5059 bytes, limit 4096"},
		{name: "APNs payload counts escapes", content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: "{{ .Params.s }}"}},
			ch: v1alpha1.ChannelPush, params: `{"s":"` + strings.Repeat("<", 700) + `"}`, limit: LimitAPNsPayload, field: "payload", actual: 4229, max: 4096},
		// Without sound or badge the FCM envelope ("data":{} around the data)
		// is a little larger than APNs'.
		{name: "FCM payload", content: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: "b", Data: map[string]string{"k": "{{ .Params.s }}"}}},
			ch: v1alpha1.ChannelPush, params: `{"s":"` + strings.Repeat("y", 4096-len(`{"aps":{"alert":{"body":"b"}},"k":""}`)) + `"}`, limit: LimitFCMPayload, field: "payload", actual: 4104, max: 4096},
		{name: "webhook body must be JSON", content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Body: `{"text": "{{ .Params.s }}"}`}},
			ch: v1alpha1.ChannelWebhook, params: `{"s":"say \"hi\""}`, limit: LimitJSON, field: "body", msg: "invalid character 'h' after object key:value pair"},
		{name: "webhook needs text or body", content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: `{{ .Params.s }}`}},
			ch: v1alpha1.ChannelWebhook, params: `{"s":""}`, limit: LimitRequired, field: "text"},
		{name: "output size", content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: `{{ range .Params.l }}{{ $.Params.s }}{{ end }}`}},
			ch: v1alpha1.ChannelWebhook, params: `{"s":"` + big + `","l":[` + strings.Repeat("1,", 100) + `1]}`, limit: LimitOutputSize, field: "text", max: MaxOutputBytes},
		{name: "step budget", content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: `{{ range .Params.l }}{{ range $.Params.l }}{{ end }}{{ end }}`}},
			ch: v1alpha1.ChannelWebhook, params: `{"l":[` + strings.Repeat("1,", 200) + `1]}`, limit: LimitBudget, field: "text", msg: "more than 20000 loop iterations"},
		{name: "byte budget: doubling in a loop", content: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: `{{ $s := "ab" }}{{ range .Params.l }}{{ $s = replace "" "xx" $s }}{{ end }}{{ len $s }}`}},
			ch: v1alpha1.ChannelWebhook, params: `{"l":[` + strings.Repeat("1,", 40) + `1]}`, limit: LimitBudget, field: "text", msg: "more than 4194304 bytes"},
		{name: "byte budget: html in an html body", content: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: `{{ $s := "<>" }}{{ range .Params.l }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ len $s }}`}},
			ch: v1alpha1.ChannelEmail, params: `{"l":[` + strings.Repeat("1,", 40) + `1]}`, limit: LimitBudget, field: "html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := compile(t, &v1alpha1.TemplateSpec{Channels: tt.content})
			_, err := c.Render(tt.ch, &Input{Params: params(t, tt.params)})
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a LimitError", err)
			}
			if le.Limit != tt.limit || le.Channel != tt.ch || le.Field != tt.field {
				t.Fatalf("got %+v", le)
			}
			if tt.max != 0 && (le.Max != tt.max || (tt.actual != 0 && le.Actual != tt.actual)) {
				t.Fatalf("got %d/%d, want %d/%d (%v)", le.Actual, le.Max, tt.actual, tt.max, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestSMSSegments(t *testing.T) {
	tests := []struct {
		name string
		text string
		segs int
		enc  SMSEncoding
	}{
		{"empty", "", 0, GSM7},
		{"one GSM", strings.Repeat("a", 160), 1, GSM7},
		{"two GSM", strings.Repeat("a", 161), 2, GSM7},
		{"GSM accents stay 7-bit", "Ça déjà été Ñ ü £ € {}", 1, GSM7},
		{"extension chars take two septets", strings.Repeat("€", 80), 1, GSM7},
		{"extension chars past one segment", strings.Repeat("€", 81), 2, GSM7},
		{"extension char is not split", strings.Repeat("a", 152) + "{" + strings.Repeat("a", 10), 2, GSM7},
		{"ten GSM", strings.Repeat("a", 1530), 10, GSM7},
		{"eleven GSM", strings.Repeat("a", 1531), 11, GSM7},
		{"backtick is not GSM", "`", 1, UCS2},
		{"one UCS-2", strings.Repeat("한", 70), 1, UCS2},
		{"two UCS-2", strings.Repeat("한", 71), 2, UCS2},
		{"emoji counts two units", strings.Repeat("😀", 35), 1, UCS2},
		{"emoji past one segment", strings.Repeat("😀", 36), 2, UCS2},
		{"surrogate pair is not split", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 10), 2, UCS2},
		{"ten UCS-2", strings.Repeat("a", 669) + "ő", 10, UCS2},
		{"one accent turns the whole text UCS-2", strings.Repeat("a", 100) + "ő", 2, UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs, enc := SMSSegments(tt.text)
			if segs != tt.segs || enc != tt.enc {
				t.Fatalf("got %d %s, want %d %s", segs, enc, tt.segs, tt.enc)
			}
		})
	}
}

// The size estimates must match what encoding/json (used by the APNs and FCM
// SDKs) produces for the same payload.
func TestPayloadSizesMatchEncodingJSON(t *testing.T) {
	for _, p := range []*senders.Push{
		{Body: "b"},
		{Title: "t", Body: "b<>&\"\\\n\t\x01\u2028é😀\xff", Sound: "default", Badge: ptr(int32(12))},
		{Title: "only title"},
		{Body: "b", Data: map[string]string{"a": "1", "<k>": "v\x00"}},
		{Data: map[string]string{"a": "1"}},
	} {
		checkPayloadSizes(t, p)
	}
}

func checkPayloadSizes(t *testing.T, p *senders.Push) {
	t.Helper()
	type alert struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	aps := map[string]any{"alert": alert{p.Title, p.Body}}
	if p.Sound != "" {
		aps["sound"] = p.Sound
	}
	if p.Badge != nil {
		aps["badge"] = *p.Badge
	}
	apns := map[string]any{"aps": aps}
	for k, v := range p.Data {
		apns[k] = v
	}
	fcm := map[string]any{"notification": alert{p.Title, p.Body}}
	if len(p.Data) > 0 {
		fcm["data"] = p.Data
	}
	for _, c := range []struct {
		name string
		v    any
		got  int
	}{{"APNs", apns, APNsPayloadSize(p)}, {"FCM", fcm, FCMPayloadSize(p)}} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if c.got != len(b) {
			t.Errorf("%s size %d, encoding/json %d: %s", c.name, c.got, len(b), b)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "ok {{ .Params.x }}"}}
	tests := []struct {
		name string
		spec v1alpha1.TemplateSpec
		want []ParseError // Msg is checked for containment
	}{
		{name: "valid", spec: v1alpha1.TemplateSpec{Channels: valid, Locales: map[string]v1alpha1.ChannelContent{"ko": valid}}},
		{name: "unclosed action", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", Text: "line one\nHi {{ .Params.name"}}},
			want: []ParseError{{Channel: "email", Field: "text", Line: 2, Column: 5, Msg: "unclosed action"}}},
		{name: "unknown function", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "a\nb\n  {{ env \"HOME\" }}"}}},
			want: []ParseError{{Channel: "sms", Field: "text", Line: 3, Column: 8, Msg: `function "env" not defined`}}},
		{name: "unterminated string", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: `{{ printf "%s }}`}}},
			want: []ParseError{{Channel: "push", Field: "body", Line: 1, Column: 11, Msg: "unterminated quoted string"}}},
		{name: "missing end", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Body: `{{ if .Params.x }}{}`}}},
			want: []ParseError{{Channel: "webhook", Field: "body", Line: 1, Msg: "unexpected EOF"}}},
		{name: "push data in a locale", spec: v1alpha1.TemplateSpec{Channels: valid, Locales: map[string]v1alpha1.ChannelContent{
			"pt-BR": {Push: &v1alpha1.PushContent{Body: "b", Data: map[string]string{"url": "{{ .Params.url }"}}}}},
			want: []ParseError{{Channel: "push", Locale: "pt-BR", Field: "data.url", Line: 1, Msg: "unexpected"}}},
		{name: "html context error", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: "<p>\n<a href=\"{{ .Params.url }}"}}},
			want: []ParseError{{Channel: "email", Field: "html", Line: 2, Msg: "ends in a non-text context"}}},
		{name: "html builtin refused in html", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: "<p>{{ .Params.x | html }}</p>"}}},
			want: []ParseError{{Channel: "email", Field: "html", Line: 1, Column: 19, Msg: "html is not available in html bodies"}}},
		{name: "define refused", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "x\n{{ define \"a\" }}{{ end }}"}}},
			want: []ParseError{{Channel: "sms", Field: "text", Line: 2, Column: 4, Msg: "define and block are not supported"}}},
		{name: "template refused", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: `{{ template "a" }}`}}},
			want: []ParseError{{Channel: "sms", Field: "text", Line: 1, Msg: "template and block are not supported"}}},
		{name: "$ redeclared", spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: `{{ $ := 1 }}`}}},
			want: []ParseError{{Channel: "sms", Field: "text", Line: 1, Msg: "$ cannot be redeclared"}}},
		{name: "bad locale key", spec: v1alpha1.TemplateSpec{Channels: valid, Locales: map[string]v1alpha1.ChannelContent{"not a tag": valid}},
			want: []ParseError{{Locale: "not a tag", Msg: "not a valid BCP 47 tag"}}},
		{name: "every error, default first then locales in order", spec: v1alpha1.TemplateSpec{
			Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "{{"}, Email: &v1alpha1.EmailContent{Subject: "{{ .x", Text: "ok"}},
			Locales: map[string]v1alpha1.ChannelContent{
				"ko": {SMS: &v1alpha1.SMSContent{Text: "{{ end }}"}},
				"de": {Push: &v1alpha1.PushContent{Body: "{{ else }}"}},
			}},
			want: []ParseError{
				{Channel: "email", Field: "subject", Line: 1, Msg: "unclosed action"},
				{Channel: "sms", Field: "text", Line: 1, Msg: "unclosed action"},
				{Channel: "push", Locale: "de", Field: "body", Line: 1, Msg: "unexpected {{else}}"},
				{Channel: "sms", Locale: "ko", Field: "text", Line: 1, Msg: "unexpected {{end}}"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(&tt.spec)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var pes ParseErrors
			if !errors.As(err, &pes) {
				t.Fatalf("got %v, want ParseErrors", err)
			}
			var first *ParseError
			if !errors.As(err, &first) || first != pes[0] {
				t.Fatalf("errors.As does not find the first ParseError")
			}
			if len(pes) != len(tt.want) {
				t.Fatalf("got %d errors, want %d: %v", len(pes), len(tt.want), err)
			}
			for i, w := range tt.want {
				g := pes[i]
				if g.Channel != w.Channel || g.Locale != w.Locale || g.Field != w.Field || g.Line != w.Line ||
					(w.Column != 0 && g.Column != w.Column) || !strings.Contains(g.Msg, w.Msg) {
					t.Errorf("error %d: got %+v, want %+v", i, *g, w)
				}
			}
			t.Log(err)
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	err := Validate(&v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "ok"}},
		Locales: map[string]v1alpha1.ChannelContent{"ko": {Email: &v1alpha1.EmailContent{Subject: "s", Text: "a\n{{ .x ) }}"}}}})
	want := `email.text (locale "ko") line 2, column 7: unexpected right paren`
	if err == nil || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

func TestDecodeParams(t *testing.T) {
	tests := []struct {
		raw     *apiextensionsv1.JSON
		want    Params
		wantErr string
	}{
		{raw: nil, want: Params{}},
		{raw: &apiextensionsv1.JSON{Raw: []byte("null")}, want: Params{}},
		{raw: &apiextensionsv1.JSON{Raw: []byte(`{"n":1,"f":1.5,"e":1e3,"big":18446744073709551616,"l":[2],"o":{"m":-3}}`)},
			want: Params{"n": int64(1), "f": 1.5, "e": 1000.0, "big": json.Number("18446744073709551616"), "l": []any{int64(2)}, "o": map[string]any{"m": int64(-3)}}},
		{raw: &apiextensionsv1.JSON{Raw: []byte(`[1]`)}, wantErr: "must be a JSON object, not a list"},
		{raw: &apiextensionsv1.JSON{Raw: []byte(`{"a":`)}, wantErr: "params:"},
		{raw: &apiextensionsv1.JSON{Raw: []byte(`{} {}`)}, wantErr: "trailing data"},
	}
	for _, tt := range tests {
		got, err := DecodeParams(tt.raw)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: got %v, want %q", tt.raw, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("got %#v, %v; want %#v", got, err, tt.want)
		}
	}
}

func TestCheckRequiredParams(t *testing.T) {
	p := params(t, `{"a":1,"n":null,"build":{"id":"x"},"dotted.key":true}`)
	if err := CheckRequiredParams([]string{"a", "build.id", "dotted.key"}, p); err != nil {
		t.Fatal(err)
	}
	err := CheckRequiredParams([]string{"z", "a", "n", "build.url", "build.id.deep"}, p)
	var me *MissingParamsError
	if !errors.As(err, &me) {
		t.Fatalf("got %v", err)
	}
	if want := []string{"build.id.deep", "build.url", "n", "z"}; !reflect.DeepEqual(me.Missing, want) {
		t.Fatalf("got %v, want %v", me.Missing, want)
	}
	if err.Error() != "missing required params: build.id.deep, build.url, n, z" {
		t.Fatal(err)
	}
}

// The example in docs/templates.md compiles and renders.
func TestDocsExample(t *testing.T) {
	spec := &v1alpha1.TemplateSpec{
		Category:       "build",
		RequiredParams: []string{"build", "repo", "url"},
		Channels: v1alpha1.ChannelContent{
			Email: &v1alpha1.EmailContent{
				Subject: "Build {{ .Params.build }} of {{ .Params.repo }} failed",
				Text:    "Hi {{ .Recipient.Name }},\nbuild {{ .Params.build }} failed at {{ date \"2006-01-02 15:04 MST\" .Params.when }}.\n{{ range .Params.failed }}- {{ . }}\n{{ end }}Log: {{ .Params.url }}\n",
				HTML:    "<p>Build {{ .Params.build }} failed.</p>\n<ul>{{ range .Params.failed }}<li>{{ . }}</li>{{ end }}</ul>\n<a href=\"{{ .Params.url }}\">log</a>\n",
			},
			SMS:     &v1alpha1.SMSContent{Text: "{{ .Params.repo }} build {{ .Params.build }} failed: {{ .Params.url }}"},
			Push:    &v1alpha1.PushContent{Title: "{{ .Params.repo }}", Body: "Build {{ .Params.build }} failed", Data: map[string]string{"url": "{{ .Params.url }}"}, Sound: "default"},
			Webhook: &v1alpha1.WebhookContent{Body: `{"text": {{ printf "Build %v failed" .Params.build | toJson }}, "url": {{ toJson .Params.url }}}`},
		},
		Locales: map[string]v1alpha1.ChannelContent{
			"ko": {SMS: &v1alpha1.SMSContent{Text: "{{ .Params.repo }} 빌드 {{ .Params.build }} 실패: {{ .Params.url }}"}},
		},
	}
	c := compile(t, spec)
	p := params(t, `{"build":1234,"repo":"herald","url":"https://ci.example.com/1234?a=1&b=2","when":"2025-06-10T12:00:00Z","failed":["TestA","Test<B>"]}`)
	if err := CheckRequiredParams(spec.RequiredParams, p); err != nil {
		t.Fatal(err)
	}
	in := &Input{Params: p, Recipient: Recipient{Name: "ada", Locale: "ko-KR", TimeZone: "Asia/Seoul"}}
	want := map[v1alpha1.Channel]string{
		v1alpha1.ChannelEmail:   "Hi ada,\nbuild 1234 failed at 2025-06-10 21:00 KST.\n- TestA\n- Test<B>\nLog: https://ci.example.com/1234?a=1&b=2\n",
		v1alpha1.ChannelSMS:     "herald 빌드 1234 실패: https://ci.example.com/1234?a=1&b=2",
		v1alpha1.ChannelPush:    "Build 1234 failed",
		v1alpha1.ChannelWebhook: `{"text": "Build 1234 failed", "url": "https://ci.example.com/1234?a=1&b=2"}`,
	}
	for _, ch := range c.Channels() {
		msg, err := c.Render(ch, in)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		switch ch {
		case v1alpha1.ChannelEmail:
			got = msg.Email.Text
			if h := "<ul><li>TestA</li><li>Test&lt;B&gt;</li></ul>\n<a href=\"https://ci.example.com/1234?a=1&amp;b=2\">log</a>"; !strings.Contains(msg.Email.HTML, h) {
				t.Errorf("html %q does not contain %q", msg.Email.HTML, h)
			}
		case v1alpha1.ChannelSMS:
			got = msg.SMS.Text
		case v1alpha1.ChannelPush:
			got = msg.Push.Body
		case v1alpha1.ChannelWebhook:
			got = string(msg.Webhook.Body)
		}
		if got != want[ch] {
			t.Errorf("%s: got %q, want %q", ch, got, want[ch])
		}
	}
}

// A parse error at the end of a large body is located cheaply and correctly.
func TestParseErrorColumnLargeBody(t *testing.T) {
	src := strings.Repeat("{{ .Params.a }} filler text\n", 4000) + "last {{ .Params.x | | }}"
	err := Validate(&v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: src}}})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 4001 || pe.Column == 0 || pe.Field != "html" {
		t.Fatalf("got %v", err)
	}
}
