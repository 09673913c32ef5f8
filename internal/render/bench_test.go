package render

import (
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
)

var benchSpec = &v1alpha1.TemplateSpec{
	Category: "build",
	Channels: v1alpha1.ChannelContent{
		Email: &v1alpha1.EmailContent{
			Subject: "Build {{ .Params.build }} of {{ .Params.repo }} {{ .Params.status | upper }}",
			Text:    "Hi {{ .Recipient.Name }},\n\nbuild {{ .Params.build }} {{ .Params.status }} at {{ date \"2006-01-02 15:04\" .Params.when }}.\n{{ range .Params.failed }}- {{ . }}\n{{ end }}\nLog: {{ .Params.url }}\n",
			HTML:    `<p>Hi {{ .Recipient.Name }},</p><p>build {{ .Params.build }} {{ .Params.status }}</p><ul>{{ range .Params.failed }}<li>{{ . }}</li>{{ end }}</ul><a href="{{ .Params.url }}">log</a>`,
		},
		SMS:  &v1alpha1.SMSContent{Text: "{{ .Params.repo }} build {{ .Params.build }} {{ .Params.status }}: {{ .Params.url }}"},
		Push: &v1alpha1.PushContent{Title: "{{ .Params.repo }}", Body: "Build {{ .Params.build }} {{ .Params.status }}", Data: map[string]string{"url": "{{ .Params.url }}", "kind": "build"}},
	},
	Locales: map[string]v1alpha1.ChannelContent{
		"ko": {SMS: &v1alpha1.SMSContent{Text: "{{ .Params.repo }} 빌드 {{ .Params.build }} {{ .Params.status }}"}},
	},
}

func benchInput(b *testing.B) *Input {
	return &Input{
		Params:       params(b, `{"build":1234,"repo":"herald","status":"failed","when":"2025-06-10T12:00:00Z","url":"https://ci.example.com/herald/1234","failed":["TestA","TestB","TestC"]}`),
		Recipient:    Recipient{Name: "ada", Locale: "ko-KR", TimeZone: "Asia/Seoul"},
		Notification: Notification{Name: "build-1234", Namespace: "ci", Category: "build", UID: "3f1c"},
	}
}

// BenchmarkRender renders one channel for one recipient from a cached
// template: the per-delivery cost of the plan step.
func BenchmarkRender(b *testing.B) {
	c := NewCache(0)
	in := benchInput(b)
	for _, ch := range []v1alpha1.Channel{v1alpha1.ChannelEmail, v1alpha1.ChannelSMS, v1alpha1.ChannelPush} {
		b.Run(string(ch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				comp, err := c.Get(Key{"uid", 1}, benchSpec)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := comp.Render(ch, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRenderCompile is the cost of a cache miss.
func BenchmarkRenderCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(benchSpec); err != nil {
			b.Fatal(err)
		}
	}
}
