package render

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"

	"golang.org/x/text/language"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Compiled is a Template parsed once; it is immutable and safe for
// concurrent Render calls.
type Compiled struct {
	def *channelSet
	// locales is keyed by the lower-cased tag.
	locales  map[string]*channelSet
	channels []v1alpha1.Channel
}

type channelSet struct {
	email   *emailTmpl
	sms     *smsTmpl
	push    *pushTmpl
	webhook *webhookTmpl
}

func (s *channelSet) has(ch v1alpha1.Channel) bool {
	switch ch {
	case v1alpha1.ChannelEmail:
		return s.email != nil
	case v1alpha1.ChannelSMS:
		return s.sms != nil
	case v1alpha1.ChannelPush:
		return s.push != nil
	case v1alpha1.ChannelWebhook:
		return s.webhook != nil
	}
	return false
}

type emailTmpl struct{ subject, text, html *body }
type smsTmpl struct{ text *body }
type pushTmpl struct {
	title, body *body
	data        []dataTmpl // sorted by key
	sound       string
	badge       *int32
	collapseKey string
}
type dataTmpl struct {
	key  string
	tmpl *body
}
type webhookTmpl struct{ title, text, link, body *body }

// body is one parsed field. Bodies without actions are kept as text and
// never executed.
type body struct {
	field  string // "subject", "data.url", ...
	src    string
	static bool
	tmpl   executor
}

type executor interface {
	Execute(io.Writer, any) error
}

// Channels lists the channels the content defines, in the default bodies or
// any locale, in v1alpha1.AllChannels order: a Notification's default channels.
func (c *Compiled) Channels() []v1alpha1.Channel { return c.channels }

// LocaleFor returns the locale block a recipient with this locale gets for
// the channel: the locale key as written, or "" for the default bodies.
func (c *Compiled) LocaleFor(locale string, ch v1alpha1.Channel) string {
	_, l := c.pick(locale, ch)
	return l
}

// pick implements the locale fallback: the tag itself, then shorter prefixes
// ("zh-Hant-TW" → "zh-Hant" → "zh", RFC 4647 lookup), then the default
// bodies. Each channel falls back on its own: a locale that only translates
// push still gets the default email.
func (c *Compiled) pick(locale string, ch v1alpha1.Channel) (*channelSet, string) {
	if len(c.locales) > 0 && locale != "" {
		tag := normTag(locale)
		for {
			if s, ok := c.locales[tag]; ok && s.has(ch) {
				return s, tag
			}
			i := strings.LastIndexByte(tag, '-')
			if i < 0 {
				break
			}
			tag = tag[:i]
		}
	}
	if c.def.has(ch) {
		return c.def, ""
	}
	return nil, ""
}

func normTag(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// Inline wraps a Notification's inline content as a TemplateSpec without
// locales or category, for Compile and Cache.
func Inline(content *v1alpha1.ChannelContent) *v1alpha1.TemplateSpec {
	return &v1alpha1.TemplateSpec{Channels: *content}
}

// Validate parses every body of every locale. It returns nil or ParseErrors,
// one *ParseError per bad body, each naming channel, locale, field, line and
// column. The Template controller reports it in the Ready condition.
func Validate(spec *v1alpha1.TemplateSpec) error {
	_, err := Compile(spec)
	return err
}

// Compile parses a TemplateSpec. It returns ParseErrors if any body does not
// parse; use a Cache to compile each (uid, generation) once.
func Compile(spec *v1alpha1.TemplateSpec) (*Compiled, error) {
	var errs ParseErrors
	c := &Compiled{}
	c.def = compileSet(&spec.Channels, "", &errs)
	if len(spec.Locales) > 0 {
		c.locales = make(map[string]*channelSet, len(spec.Locales))
		keys := make([]string, 0, len(spec.Locales))
		for k := range spec.Locales {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			content := spec.Locales[k]
			if _, err := language.Parse(k); err != nil {
				errs = append(errs, &ParseError{Locale: k, Msg: "locale is not a valid BCP 47 tag: " + err.Error()})
				continue
			}
			n := normTag(k)
			if _, dup := c.locales[n]; dup {
				errs = append(errs, &ParseError{Locale: k, Msg: "locale is defined twice (tags are case-insensitive)"})
				continue
			}
			c.locales[n] = compileSet(&content, k, &errs)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, ch := range v1alpha1.AllChannels {
		defined := c.def.has(ch)
		for _, s := range c.locales {
			defined = defined || s.has(ch)
		}
		if defined {
			c.channels = append(c.channels, ch)
		}
	}
	return c, nil
}

func compileSet(cc *v1alpha1.ChannelContent, locale string, errs *ParseErrors) *channelSet {
	s := &channelSet{}
	p := func(ch v1alpha1.Channel, field, src string, html bool) *body {
		if src == "" {
			return nil
		}
		b, err := parseBody(ch, locale, field, src, html)
		if err != nil {
			*errs = append(*errs, err)
		}
		return b
	}
	if e := cc.Email; e != nil {
		s.email = &emailTmpl{
			subject: p(v1alpha1.ChannelEmail, "subject", e.Subject, false),
			text:    p(v1alpha1.ChannelEmail, "text", e.Text, false),
			html:    p(v1alpha1.ChannelEmail, "html", e.HTML, true),
		}
	}
	if m := cc.SMS; m != nil {
		s.sms = &smsTmpl{text: p(v1alpha1.ChannelSMS, "text", m.Text, false)}
	}
	if m := cc.Push; m != nil {
		t := &pushTmpl{
			title:       p(v1alpha1.ChannelPush, "title", m.Title, false),
			body:        p(v1alpha1.ChannelPush, "body", m.Body, false),
			sound:       m.Sound,
			badge:       m.Badge,
			collapseKey: m.CollapseKey,
		}
		keys := make([]string, 0, len(m.Data))
		for k := range m.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if b := p(v1alpha1.ChannelPush, "data."+k, m.Data[k], false); b != nil {
				t.data = append(t.data, dataTmpl{key: k, tmpl: b})
			} else if m.Data[k] == "" {
				t.data = append(t.data, dataTmpl{key: k, tmpl: &body{field: "data." + k, static: true}})
			}
		}
		s.push = t
	}
	if w := cc.Webhook; w != nil {
		s.webhook = &webhookTmpl{
			title: p(v1alpha1.ChannelWebhook, "title", w.Title, false),
			text:  p(v1alpha1.ChannelWebhook, "text", w.Text, false),
			link:  p(v1alpha1.ChannelWebhook, "link", w.Link, false),
			body:  p(v1alpha1.ChannelWebhook, "body", w.Body, false),
		}
	}
	return s
}

// parseBody parses one field and instruments it (see instrument). html
// selects html/template. Parse errors come back with line and column.
func parseBody(ch v1alpha1.Channel, locale, field, src string, html bool) (*body, *ParseError) {
	name := string(ch) + "." + field
	b := &body{field: field, src: src}
	perr := func(line, col int, msg string) *ParseError {
		return &ParseError{Channel: ch, Locale: locale, Field: field, Line: line, Column: col, Msg: msg}
	}
	var tree *parse.Tree
	var ht *htmltemplate.Template
	if html {
		t, err := htmltemplate.New(name).Option("missingkey=error").Funcs(htmlFuncs).Parse(src)
		if err != nil {
			line, col, msg := locateParseError(src, err, func(s string) error {
				_, err := htmltemplate.New(name).Funcs(htmlFuncs).Parse(s)
				return err
			})
			return nil, perr(line, col, msg)
		}
		if err := noDefines(name, src, t.Templates()); err != nil {
			return nil, perr(err.line, err.col, err.msg)
		}
		ht, tree = t, t.Tree
		b.tmpl = t
	} else {
		t, err := template.New(name).Option("missingkey=error").Funcs(textFuncs).Parse(src)
		if err != nil {
			line, col, msg := locateParseError(src, err, func(s string) error {
				_, err := template.New(name).Funcs(textFuncs).Parse(s)
				return err
			})
			return nil, perr(line, col, msg)
		}
		if err := noDefines(name, src, t.Templates()); err != nil {
			return nil, perr(err.line, err.col, err.msg)
		}
		tree = t.Tree
		b.tmpl = t
	}
	if tree == nil || tree.Root == nil {
		// Only comments or {{/* */}}: renders empty.
		b.static, b.src = true, ""
		return b, nil
	}
	if err := instrument(tree, html); err != nil {
		line, col := lineCol(src, int(err.pos))
		return nil, perr(line, col, err.msg)
	}
	if text, ok := staticText(tree.Root); ok && !html {
		b.static, b.src = true, text
		return b, nil
	}
	if ht != nil {
		// html/template escapes on first execution; do it now so context
		// errors ("ends in a non-text context") are parse errors, not
		// failures of the first real send.
		probe := &execData{Params: Params{}, st: &budget{}}
		if err := ht.Execute(io.Discard, probe); err != nil {
			var he *htmltemplate.Error
			if errors.As(err, &he) {
				line, col := he.Line, 0
				desc := he.Description
				switch {
				case he.Node != nil:
					line, col = lineCol(src, int(he.Node.Position()))
				case he.ErrorCode == htmltemplate.ErrEndContext:
					// Reported without a position: it is the end of the body.
					// The context dump that follows is html/template's internals.
					line, col = lineCol(src, len(src))
					desc, _, _ = strings.Cut(desc, ": {")
				}
				return nil, perr(line, col, desc)
			}
		}
	}
	return b, nil
}

// staticText returns the text of a body without actions (comments already
// dropped and trim markers applied by the parser).
func staticText(root *parse.ListNode) (string, bool) {
	var sb strings.Builder
	for _, n := range root.Nodes {
		t, ok := n.(*parse.TextNode)
		if !ok {
			return "", false
		}
		sb.Write(t.Text)
	}
	return sb.String(), true
}

type posError struct {
	line, col int
	msg       string
}

// noDefines rejects {{define}} and {{block}}: they add templates to the set,
// and recursion between them would escape the execution budget.
func noDefines[T interface{ Name() string }](name, src string, ts []T) *posError {
	for _, t := range ts {
		if t.Name() == name {
			continue
		}
		e := &posError{msg: fmt.Sprintf("define and block are not supported (%q): each field is one template", t.Name())}
		if i := strings.Index(src, "define"); i >= 0 {
			e.line, e.col = lineCol(src, i)
		} else if i := strings.Index(src, "block"); i >= 0 {
			e.line, e.col = lineCol(src, i)
		}
		return e
	}
	return nil
}
