// Package render turns a Template (or a Notification's inline content) into
// the per-channel messages Herald sends: an email's subject and bodies, an
// SMS text, a push notification, a webhook message.
//
// Bodies are Go templates: text/template for everything but an email's html,
// which uses html/template so params are escaped. Templates see .Params,
// .Recipient and .Notification and a small function set with no access to
// the environment, files or network (docs/templates.md). Execution is
// bounded: a template cannot loop, allocate or write without limit, so a
// hostile template costs an error, never a hung or exhausted manager.
//
// Compile parses every body of every locale once; the Template controller
// calls Validate to report parse errors, the pipeline renders through a Cache
// keyed by (uid, generation). Rendered messages are checked against the
// providers' limits (push payload size, SMS segments, a single-line subject,
// valid JSON for webhook bodies) and fail with a *LimitError naming the limit.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Recipient is the person a message is rendered for; templates see it as .Recipient.
type Recipient struct {
	// Name is the UserPreference name, or the address for inline recipients.
	Name string
	// Locale is a BCP 47 tag; it picks the template's locale block.
	Locale string
	// TimeZone is an IANA name; the date function formats in it. Empty or
	// invalid means UTC.
	TimeZone string
}

// Notification identifies the Notification being sent; templates see it as .Notification.
type Notification struct {
	Name      string
	Namespace string
	Category  string
	// UID is the default push collapse key.
	UID string
}

// Params is a Notification's params, decoded once and shared by every
// recipient's render: templates only read it.
type Params map[string]any

// Input is what one render of one channel needs.
type Input struct {
	Params       Params
	Recipient    Recipient
	Notification Notification
}

// DecodeParams decodes a Notification's spec.params. Absent or null params
// decode to an empty map. Integral numbers become int64 so "{{.Params.count}}"
// prints 1000000 rather than 1e+06 and compares with eq; numbers beyond int64
// keep their exact text; others become float64.
func DecodeParams(raw *apiextensionsv1.JSON) (Params, error) {
	if raw == nil || len(bytes.TrimSpace(raw.Raw)) == 0 {
		return Params{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if dec.More() {
		return nil, errors.New("params: trailing data after the JSON object")
	}
	switch m := v.(type) {
	case nil:
		return Params{}, nil
	case map[string]any:
		convertNumbers(m)
		return Params(m), nil
	default:
		return nil, fmt.Errorf("params: must be a JSON object, not %s", kindOf(v))
	}
}

func convertNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if !strings.ContainsAny(string(x), ".eE") {
			return x // an integer too large for int64: keep every digit
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
	}
	return v
}

// MissingParamsError lists the required params a Notification did not pass.
type MissingParamsError struct {
	Missing []string
}

func (e *MissingParamsError) Error() string {
	return "missing required params: " + strings.Join(e.Missing, ", ")
}

// CheckRequiredParams returns a *MissingParamsError naming every required
// param that is absent or null. A name with dots ("build.id") is also looked
// up as a path into nested objects.
func CheckRequiredParams(required []string, params Params) error {
	var missing []string
	for _, name := range required {
		if !hasParam(params, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return &MissingParamsError{Missing: missing}
}

func hasParam(params Params, name string) bool {
	if v, ok := params[name]; ok {
		return v != nil
	}
	var cur any = map[string]any(params)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return cur != nil
}

// execData is the template's root (dot at the start, and always $). Its
// unexported budget travels with it so the functions, which receive $ as a
// hidden first argument, can charge the one execution they belong to.
type execData struct {
	Params       Params
	Recipient    Recipient
	Notification Notification
	st           *budget
}

// ErrNoContent means neither the recipient's locale nor the default bodies
// define the channel.
var ErrNoContent = errors.New("no content for this channel")

// Render renders one channel for one recipient. The returned message has
// Notification and the channel's part set; the caller sets ID, Priority and
// Expiration. Errors are *RenderError (a template failed to execute),
// *LimitError (the result breaks a provider limit) or wrap ErrNoContent.
func (c *Compiled) Render(ch v1alpha1.Channel, in *Input) (*senders.Message, error) {
	set, locale := c.pick(in.Recipient.Locale, ch)
	if set == nil {
		return nil, fmt.Errorf("%s: %w", ch, ErrNoContent)
	}
	r := renderer{
		ch:     ch,
		locale: locale,
		data: execData{
			Params:       in.Params,
			Recipient:    in.Recipient,
			Notification: in.Notification,
			st:           &budget{},
		},
	}
	if r.data.Params == nil {
		r.data.Params = Params{}
	}
	msg := &senders.Message{Notification: senders.NotificationRef{
		Namespace: in.Notification.Namespace, Name: in.Notification.Name,
		UID: in.Notification.UID, Category: in.Notification.Category,
	}}
	var err error
	switch ch {
	case v1alpha1.ChannelEmail:
		msg.Email, err = r.email(set.email)
	case v1alpha1.ChannelSMS:
		msg.SMS, err = r.sms(set.sms)
	case v1alpha1.ChannelPush:
		msg.Push, err = r.push(set.push, in.Notification.UID)
	case v1alpha1.ChannelWebhook:
		msg.Webhook, err = r.webhook(set.webhook)
	default:
		return nil, fmt.Errorf("%s: %w", ch, ErrNoContent)
	}
	if err != nil {
		return nil, err
	}
	return msg, nil
}

type renderer struct {
	ch     v1alpha1.Channel
	locale string
	data   execData
}

func (r *renderer) limit(field string, l Limit, actual, max int, detail string) error {
	return &LimitError{Channel: r.ch, Locale: r.locale, Field: field, Limit: l, Actual: actual, Max: max, Detail: detail}
}

func (r *renderer) email(t *emailTmpl) (*senders.Email, error) {
	subject, err := r.exec(t.subject)
	if err != nil {
		return nil, err
	}
	// Conditionals leave stray spaces and newlines at the ends; only a line
	// break inside the subject is a real problem (header injection, folding).
	subject = strings.TrimSpace(subject)
	if subject == "" {
		return nil, r.limit("subject", LimitRequired, 0, 0, "")
	}
	if strings.ContainsAny(subject, "\r\n") {
		return nil, r.limit("subject", LimitSingleLine, strings.Count(subject, "\n")+1, 1, "")
	}
	e := &senders.Email{Subject: subject}
	if e.Text, err = r.exec(t.text); err != nil {
		return nil, err
	}
	if e.HTML, err = r.exec(t.html); err != nil {
		return nil, err
	}
	if strings.TrimSpace(e.Text) == "" && strings.TrimSpace(e.HTML) == "" {
		return nil, r.limit("text/html", LimitRequired, 0, 0, "")
	}
	return e, nil
}

func (r *renderer) sms(t *smsTmpl) (*senders.SMS, error) {
	text, err := r.exec(t.text)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" {
		return nil, r.limit("text", LimitRequired, 0, 0, "")
	}
	if n, enc := SMSSegments(text); n > MaxSMSSegments {
		return nil, r.limit("text", LimitSMSSegments, n, MaxSMSSegments, string(enc))
	}
	return &senders.SMS{Text: text}, nil
}

func (r *renderer) push(t *pushTmpl, uid string) (*senders.Push, error) {
	p := &senders.Push{Sound: t.sound, Badge: t.badge, CollapseKey: t.collapseKey}
	if p.CollapseKey == "" {
		p.CollapseKey = uid
	}
	var err error
	if p.Title, err = r.exec(t.title); err != nil {
		return nil, err
	}
	if p.Body, err = r.exec(t.body); err != nil {
		return nil, err
	}
	if strings.TrimSpace(p.Title) == "" && strings.TrimSpace(p.Body) == "" {
		return nil, r.limit("body", LimitRequired, 0, 0, "")
	}
	if len(t.data) > 0 {
		p.Data = make(map[string]string, len(t.data))
		for _, d := range t.data {
			if p.Data[d.key], err = r.exec(d.tmpl); err != nil {
				return nil, err
			}
		}
	}
	if n := APNsPayloadSize(p); n > MaxAPNsPayload {
		return nil, r.limit("payload", LimitAPNsPayload, n, MaxAPNsPayload, "")
	}
	if n := FCMPayloadSize(p); n > MaxFCMPayload {
		return nil, r.limit("payload", LimitFCMPayload, n, MaxFCMPayload, "")
	}
	return p, nil
}

func (r *renderer) webhook(t *webhookTmpl) (*senders.Webhook, error) {
	w := &senders.Webhook{}
	var err error
	for _, f := range []struct {
		dst *string
		src *body
	}{{&w.Title, t.title}, {&w.Text, t.text}, {&w.Link, t.link}} {
		if *f.dst, err = r.exec(f.src); err != nil {
			return nil, err
		}
	}
	if t.body != nil {
		body, err := r.exec(t.body)
		if err != nil {
			return nil, err
		}
		if !json.Valid([]byte(body)) {
			var detail string
			var v any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				detail = err.Error()
			}
			return nil, r.limit("body", LimitJSON, 0, 0, detail)
		}
		w.Body = json.RawMessage(body)
	}
	if strings.TrimSpace(w.Text) == "" && strings.TrimSpace(w.Title) == "" && len(w.Body) == 0 {
		return nil, r.limit("text", LimitRequired, 0, 0, "")
	}
	return w, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// exec runs one body into a bounded buffer. A nil body renders "".
func (r *renderer) exec(b *body) (string, error) {
	if b == nil {
		return "", nil
	}
	if b.static {
		return b.src, nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	w := limitedWriter{buf: buf, max: MaxOutputBytes}
	err := b.tmpl.Execute(&w, &r.data)
	switch {
	case w.over:
		return "", r.limit(b.field, LimitOutputSize, w.n, MaxOutputBytes, "")
	case r.data.st.exceeded != "":
		return "", r.limit(b.field, LimitBudget, 0, 0, r.data.st.exceeded)
	case err != nil:
		return "", newRenderError(r.ch, r.locale, b.field, err)
	}
	return buf.String(), nil
}

// limitedWriter fails the execution, instead of growing, once a body passes
// MaxOutputBytes; text/template stops at the first failed write.
type limitedWriter struct {
	buf  *bytes.Buffer
	max  int
	n    int
	over bool
}

var errOutputLimit = errors.New("output limit reached")

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > w.max {
		w.over = true
		return 0, errOutputLimit
	}
	return w.buf.Write(p)
}
