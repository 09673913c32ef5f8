package render

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// ParseError is a body that does not parse (or uses a construct Herald does
// not allow). Line and Column are 1-based; 0 means unknown.
type ParseError struct {
	Channel v1alpha1.Channel
	// Locale is the locale key as written, "" for the default bodies.
	Locale string
	// Field is the channel's field: subject, text, html, title, body, data.KEY.
	Field  string
	Line   int
	Column int
	Msg    string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Channel != "" {
		b.WriteString(string(e.Channel))
		b.WriteString(".")
		b.WriteString(e.Field)
		b.WriteString(" ")
	}
	b.WriteString(localeLabel(e.Locale))
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func localeLabel(l string) string {
	if l == "" {
		return "(default)"
	}
	return "(locale " + strconv.Quote(l) + ")"
}

// ParseErrors is every ParseError of a TemplateSpec, default bodies first,
// then locales in key order.
type ParseErrors []*ParseError

func (es ParseErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// Unwrap lets errors.As find the first *ParseError.
func (es ParseErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// RenderError is a template that parsed but failed to execute for these
// params: a missing key, a function given the wrong type.
type RenderError struct {
	Channel v1alpha1.Channel
	Locale  string
	Field   string
	// Line and Column locate the failing action, when known.
	Line, Column int
	Msg          string
	Err          error
}

func (e *RenderError) Error() string {
	pos := ""
	if e.Line > 0 {
		pos = fmt.Sprintf(" line %d, column %d", e.Line, e.Column)
	}
	return fmt.Sprintf("%s.%s %s%s: %s", e.Channel, e.Field, localeLabel(e.Locale), pos, e.Msg)
}

func (e *RenderError) Unwrap() error { return e.Err }

// text/template execution errors read
//
//	template: email.subject:1:9: executing "email.subject" at <.Params.x>: map has no entry for key "x"
var execErrRE = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): executing "[^"]*" (.*)$`)

// Functions receive $ as a hidden first argument (see instrument); arity
// errors must count what the author wrote.
var arityRE = regexp.MustCompile(`wrong number of args for (\w+): want (at least )?(\d+) got (\d+)`)

func newRenderError(ch v1alpha1.Channel, locale, field string, err error) *RenderError {
	e := &RenderError{Channel: ch, Locale: locale, Field: field, Msg: err.Error(), Err: err}
	if m := execErrRE.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Column, _ = strconv.Atoi(m[2])
		e.Msg = m[3]
	}
	e.Msg = arityRE.ReplaceAllStringFunc(e.Msg, func(s string) string {
		m := arityRE.FindStringSubmatch(s)
		if _, ok := statefulNames[m[1]]; !ok {
			return s
		}
		want, _ := strconv.Atoi(m[3])
		got, _ := strconv.Atoi(m[4])
		return fmt.Sprintf("wrong number of args for %s: want %s%d got %d", m[1], m[2], want-1, max(got-1, 0))
	})
	return e
}

// Limit names a limit a rendered message broke.
type Limit string

const (
	// LimitAPNsPayload: the APNs JSON payload (aps + data) is over 4 KiB.
	LimitAPNsPayload Limit = "APNsPayload"
	// LimitFCMPayload: the FCM payload (notification + data) is over 4 KiB.
	LimitFCMPayload Limit = "FCMPayload"
	// LimitSMSSegments: the text needs more than 10 SMS segments.
	LimitSMSSegments Limit = "SMSSegments"
	// LimitRequired: a field that must not be empty rendered empty.
	LimitRequired Limit = "Required"
	// LimitSingleLine: the email subject spans several lines.
	LimitSingleLine Limit = "SingleLine"
	// LimitJSON: the webhook body is not valid JSON.
	LimitJSON Limit = "ValidJSON"
	// LimitOutputSize: a field rendered more than MaxOutputBytes.
	LimitOutputSize Limit = "OutputSize"
	// LimitBudget: the template ran too many steps or functions produced too
	// many bytes (MaxSteps, MaxFuncBytes).
	LimitBudget Limit = "ExecutionBudget"
)

// LimitError is a rendered message that breaks a provider's or Herald's
// limit. Actual and Max are set for numeric limits.
type LimitError struct {
	Channel v1alpha1.Channel
	Locale  string
	Field   string
	Limit   Limit
	Actual  int
	Max     int
	// Detail adds context: the SMS encoding, the JSON syntax error, which budget.
	Detail string
}

func (e *LimitError) Error() string {
	where := fmt.Sprintf("%s.%s %s", e.Channel, e.Field, localeLabel(e.Locale))
	switch e.Limit {
	case LimitAPNsPayload:
		return fmt.Sprintf("%s: APNs payload is %d bytes, limit %d", where, e.Actual, e.Max)
	case LimitFCMPayload:
		return fmt.Sprintf("%s: FCM payload is %d bytes, limit %d", where, e.Actual, e.Max)
	case LimitSMSSegments:
		return fmt.Sprintf("%s: text needs %d SMS segments (%s), limit %d", where, e.Actual, e.Detail, e.Max)
	case LimitRequired:
		return where + ": rendered empty"
	case LimitSingleLine:
		return fmt.Sprintf("%s: subject must be a single line, has %d", where, e.Actual)
	case LimitJSON:
		return fmt.Sprintf("%s: body is not valid JSON: %s", where, e.Detail)
	case LimitOutputSize:
		return fmt.Sprintf("%s: output is over %d bytes", where, e.Max)
	case LimitBudget:
		return fmt.Sprintf("%s: execution budget exceeded: %s", where, e.Detail)
	}
	return fmt.Sprintf("%s: limit %s exceeded (%d > %d) %s", where, e.Limit, e.Actual, e.Max, e.Detail)
}

// text/template parse errors read "template: NAME:LINE: MSG", without a column.
var parseErrRE = regexp.MustCompile(`^template: [^:]*:(\d+): (.*)$`)

// locateParseError extracts line and message from a parse error and finds
// the column: the parser reports only the line, so it re-parses prefixes of
// that line to find the shortest one that fails the same way, i.e. where
// the parser stopped. This costs a few parses, paid only on the error path.
func locateParseError(src string, err error, parse func(string) error) (line, col int, msg string) {
	full := err.Error()
	m := parseErrRE.FindStringSubmatch(full)
	if m == nil {
		return 0, 0, strings.TrimPrefix(full, "template: ")
	}
	line, _ = strconv.Atoi(m[1])
	msg = m[2]
	start := 0
	for i := 1; i < line; i++ {
		nl := strings.IndexByte(src[start:], '\n')
		if nl < 0 {
			return line, 0, msg
		}
		start += nl + 1
	}
	end := len(src)
	if nl := strings.IndexByte(src[start:], '\n'); nl >= 0 {
		end = start + nl + 1
	}
	same := func(p int) bool {
		err := parse(src[:p])
		return err != nil && err.Error() == full
	}
	if !same(end) {
		return line, 0, msg
	}
	var hi int
	if end-start <= 256 && start <= 16<<10 {
		// Short line early in the body: the first failing prefix, exactly.
		for hi = start; hi < end && !same(hi); hi++ {
		}
	} else {
		// Otherwise a binary search finds a prefix where the error starts,
		// for about 17 parses.
		lo := start
		hi = end // invariant: same(hi)
		for lo < hi {
			mid := (lo + hi) / 2
			if same(mid) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
	}
	for hi < len(src) && !utf8.RuneStart(src[hi]) {
		hi++
	}
	col = max(utf8.RuneCountInString(src[start:hi]), 1)
	return line, col, msg
}

// lineCol converts a byte offset in src to a 1-based line and rune column.
func lineCol(src string, pos int) (int, int) {
	if pos < 0 || pos > len(src) {
		return 0, 0
	}
	before := src[:pos]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}
