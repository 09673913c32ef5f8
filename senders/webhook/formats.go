package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Chat formats: each builds the service's own message from the webhook
// content's title, text and link, coloured by priority.
const (
	FormatTeams      = "teams"
	FormatGoogleChat = "googlechat"
	FormatDiscord    = "discord"
	FormatMattermost = "mattermost"
)

// Formats are the accepted values of spec.webhook.format.
var Formats = []string{FormatJSON, FormatSlack, FormatTeams, FormatGoogleChat, FormatDiscord, FormatMattermost}

// limit is one documented bound of a chat service: a field may hold at
// most max characters.
type limit struct {
	field string
	max   int
}

// Limits of each service, as its documentation gives them (characters,
// counted as the services count: Unicode code points). A message over one
// fails with PayloadRejected naming the field and the bound, instead of
// being cut off or refused by the service with a vaguer answer.
var limits = map[string][]limit{
	// Slack: header block text 150, section text 3,000, message text 40,000.
	FormatSlack: {{"title", 150}, {"text", 3000}},
	// Microsoft Teams (Workflows): the whole card must stay under 28 KB.
	FormatTeams: {{"title", 1024}, {"text", 20000}},
	// Google Chat: message text 4,096.
	FormatGoogleChat: {{"title+text", 4000}},
	// Discord: embed title 256, embed description 4,096.
	FormatDiscord: {{"title", 256}, {"text", 4096}},
	// Mattermost: attachment text is a post's 16,383.
	FormatMattermost: {{"title", 1024}, {"text", 16383}},
}

// colours by priority: critical red, high orange, normal blue, low grey.
var colours = map[v1alpha1.Priority]int{
	v1alpha1.PriorityCritical: 0xD00000,
	v1alpha1.PriorityHigh:     0xE8A317,
	v1alpha1.PriorityNormal:   0x2B7BB9,
	v1alpha1.PriorityLow:      0x9E9E9E,
}

func colour(p v1alpha1.Priority) int {
	if c, ok := colours[p]; ok {
		return c
	}
	return colours[v1alpha1.PriorityNormal]
}

func hexColour(p v1alpha1.Priority) string { return fmt.Sprintf("#%06X", colour(p)) }

// checkLimits fails when a field of w is longer than format allows.
func checkLimits(format string, w *senders.Webhook) error {
	for _, l := range limits[format] {
		var n int
		switch l.field {
		case "title":
			n = utf8.RuneCountInString(w.Title)
		case "text":
			n = utf8.RuneCountInString(w.Text)
		case "title+text":
			n = utf8.RuneCountInString(w.Title) + utf8.RuneCountInString(w.Text)
		}
		if n > l.max {
			return senders.Permanent(senders.ReasonPayloadRejected, "",
				fmt.Sprintf("webhook %s is %d characters; %s allows %d", l.field, n, format, l.max))
		}
	}
	return nil
}

// fallback is the plain text of a chat message: title, text and link on
// their own lines.
func fallback(w *senders.Webhook) string {
	parts := make([]string, 0, 3)
	for _, s := range []string{w.Title, w.Text, w.Link} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "\n")
}

// chatBody builds the body of a chat format from msg's webhook content.
func chatBody(format string, msg *senders.Message) (any, error) {
	w := msg.Webhook
	if err := checkLimits(format, w); err != nil {
		return nil, err
	}
	switch format {
	case FormatSlack:
		return slack(w, msg.Priority), nil
	case FormatTeams:
		return teams(w, msg.Priority), nil
	case FormatGoogleChat:
		return googleChat(w), nil
	case FormatDiscord:
		return discord(w, msg.Priority), nil
	case FormatMattermost:
		return mattermost(w, msg.Priority), nil
	}
	return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "unknown webhook format "+format)
}

type obj = map[string]any

// slack is Block Kit inside a coloured attachment, with the plain text as
// the notification fallback.
func slack(w *senders.Webhook, p v1alpha1.Priority) obj {
	var blocks []obj
	if w.Title != "" {
		blocks = append(blocks, obj{"type": "header", "text": obj{"type": "plain_text", "text": w.Title, "emoji": true}})
	}
	if w.Text != "" {
		blocks = append(blocks, obj{"type": "section", "text": obj{"type": "mrkdwn", "text": w.Text}})
	}
	if w.Link != "" {
		blocks = append(blocks, obj{"type": "actions", "elements": []obj{
			{"type": "button", "text": obj{"type": "plain_text", "text": "Open"}, "url": w.Link}}})
	}
	return obj{"text": fallback(w), "attachments": []obj{{"color": hexColour(p), "blocks": blocks}}}
}

// teams is an Adaptive Card as a Workflows webhook takes it.
func teams(w *senders.Webhook, p v1alpha1.Priority) obj {
	var body []obj
	if w.Title != "" {
		c := "Default"
		switch p {
		case v1alpha1.PriorityCritical:
			c = "Attention"
		case v1alpha1.PriorityHigh:
			c = "Warning"
		}
		body = append(body, obj{"type": "TextBlock", "text": w.Title, "weight": "Bolder", "size": "Medium", "wrap": true, "color": c})
	}
	if w.Text != "" {
		body = append(body, obj{"type": "TextBlock", "text": w.Text, "wrap": true})
	}
	card := obj{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body}
	if w.Link != "" {
		card["actions"] = []obj{{"type": "Action.OpenUrl", "title": "Open", "url": w.Link}}
	}
	return obj{"type": "message", "attachments": []obj{{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}}
}

// googleChat is a text message: the title bold, the link as <url|Open>.
func googleChat(w *senders.Webhook) obj {
	var b strings.Builder
	if w.Title != "" {
		b.WriteString("*" + w.Title + "*\n")
	}
	b.WriteString(w.Text)
	if w.Link != "" {
		b.WriteString("\n<" + w.Link + "|Open>")
	}
	return obj{"text": strings.TrimSpace(b.String())}
}

// discord is one embed.
func discord(w *senders.Webhook, p v1alpha1.Priority) obj {
	e := obj{"color": colour(p)}
	if w.Title != "" {
		e["title"] = w.Title
	}
	if w.Text != "" {
		e["description"] = w.Text
	}
	if w.Link != "" {
		e["url"] = w.Link
	}
	return obj{"embeds": []obj{e}, "allowed_mentions": obj{"parse": []string{}}}
}

// mattermost is a Slack-compatible attachment.
func mattermost(w *senders.Webhook, p v1alpha1.Priority) obj {
	a := obj{"fallback": fallback(w), "color": hexColour(p), "text": w.Text}
	if w.Title != "" {
		a["title"] = w.Title
		if w.Link != "" {
			a["title_link"] = w.Link
		}
	} else if w.Link != "" {
		a["text"] = strings.TrimSpace(w.Text + "\n" + w.Link)
	}
	return obj{"attachments": []obj{a}}
}

// marshal encodes a chat body; maps encode with sorted keys, so golden
// files are stable.
func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, senders.Permanent(senders.ReasonPayloadRejected, "", "cannot encode the message: "+err.Error())
	}
	return b, nil
}
