package webhook_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/webhook"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func chatMessage(p v1alpha1.Priority) *senders.Message {
	m := message()
	m.Priority = p
	m.Webhook = &senders.Webhook{Title: "Build 1234 failed", Text: "`make test` failed on main after 3m12s.", Link: "https://ci.example/runs/1234"}
	return m
}

// Each format's body for a message with a title, text and link, compared
// with its golden file (go test ./senders/webhook -update rewrites them).
func TestFormatGolden(t *testing.T) {
	for _, format := range webhook.Formats {
		for _, p := range []v1alpha1.Priority{v1alpha1.PriorityCritical, v1alpha1.PriorityNormal} {
			name := format + "-" + string(p)
			t.Run(name, func(t *testing.T) {
				b, err := webhook.Body(format, chatMessage(p))
				if err != nil {
					t.Fatal(err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, b, "", "  "); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, b)
				}
				pretty.WriteByte('\n')
				path := filepath.Join("testdata", "golden", name+".json")
				if *update {
					if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(pretty.Bytes(), want) {
					t.Errorf("%s body differs from %s:\n%s", format, path, pretty.Bytes())
				}
			})
		}
	}
}

// What every chat format must carry: the title, the text and the link
// somewhere a person sees them, and the priority's colour where the
// service has colours.
func TestFormatsCarryTheContent(t *testing.T) {
	m := chatMessage(v1alpha1.PriorityCritical)
	for _, format := range webhook.Formats {
		b, err := webhook.Body(format, m)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for _, want := range []string{m.Webhook.Title, "make test", m.Webhook.Link} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s body lacks %q: %s", format, want, b)
			}
		}
		colour := map[string]string{webhook.FormatSlack: "#D00000", webhook.FormatMattermost: "#D00000", webhook.FormatDiscord: "13631488", webhook.FormatTeams: "Attention"}[format]
		if colour != "" && !strings.Contains(string(b), colour) {
			t.Errorf("%s body lacks the critical colour %s: %s", format, colour, b)
		}
	}
}

// A message over a service's documented limit fails with PayloadRejected
// naming the field and the bound.
func TestFormatLimits(t *testing.T) {
	for _, tc := range []struct {
		format, field string
		w             senders.Webhook
		want          string
	}{
		{webhook.FormatSlack, "title", senders.Webhook{Title: strings.Repeat("t", 151), Text: "x"}, "title is 151 characters; slack allows 150"},
		{webhook.FormatSlack, "text", senders.Webhook{Text: strings.Repeat("é", 3001)}, "text is 3001 characters; slack allows 3000"},
		{webhook.FormatDiscord, "title", senders.Webhook{Title: strings.Repeat("t", 257), Text: "x"}, "discord allows 256"},
		{webhook.FormatDiscord, "text", senders.Webhook{Text: strings.Repeat("x", 4097)}, "discord allows 4096"},
		{webhook.FormatGoogleChat, "title+text", senders.Webhook{Title: "t", Text: strings.Repeat("x", 4000)}, "googlechat allows 4000"},
		{webhook.FormatMattermost, "text", senders.Webhook{Text: strings.Repeat("x", 16384)}, "mattermost allows 16383"},
		{webhook.FormatTeams, "text", senders.Webhook{Text: strings.Repeat("x", 20001)}, "teams allows 20000"},
	} {
		m := message()
		m.Webhook = &tc.w
		_, err := webhook.Body(tc.format, m)
		e := senders.AsError(err)
		if e == nil || !e.Permanent || e.Reason != senders.ReasonPayloadRejected || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s over the limit: %v, want a permanent PayloadRejected saying %q", tc.format, tc.field, err, tc.want)
		}
		// At the limit it goes.
		at := tc.w
		if tc.field == "title" {
			at.Title = at.Title[:len(at.Title)-1]
		} else {
			r := []rune(at.Text)
			at.Text = string(r[:len(r)-1])
		}
		m.Webhook = &at
		if _, err := webhook.Body(tc.format, m); err != nil {
			t.Errorf("%s %s at the limit: %v", tc.format, tc.field, err)
		}
	}
}

// A template's own JSON body is sent as is, whatever the format.
func TestFormatsSendTheTemplateBodyAsIs(t *testing.T) {
	m := chatMessage(v1alpha1.PriorityNormal)
	m.Webhook.Body = json.RawMessage(`{"custom":true}`)
	for _, format := range webhook.Formats {
		if b, err := webhook.Body(format, m); err != nil || string(b) != `{"custom":true}` {
			t.Errorf("%s: %s, %v", format, b, err)
		}
	}
}
