package render

import (
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	// Embedded so recipients' time zones load on any base image.
	_ "time/tzdata"
)

// Execution bounds for one Render call (one channel for one recipient).
const (
	// MaxOutputBytes bounds each rendered field.
	MaxOutputBytes = 256 << 10
	// MaxSteps bounds range iterations plus function calls.
	MaxSteps = 20_000
	// MaxFuncBytes bounds the bytes Herald's functions read and write in
	// total, so loops over growing variables stay cheap.
	MaxFuncBytes = 4 << 20
)

// budget is the execution allowance of one Render call.
type budget struct {
	steps, bytes int
	exceeded     string
	loc          *time.Location
}

var errBudget = errors.New("execution budget exceeded")

// charge records one step and n bytes of work, failing once either
// allowance is spent. The failure is remembered so Render reports a
// LimitError whatever the template does with the function's error.
func (b *budget) charge(n int) error {
	b.steps++
	b.bytes += n
	switch {
	case b.exceeded != "":
	case b.steps > MaxSteps:
		b.exceeded = fmt.Sprintf("more than %d loop iterations and function calls", MaxSteps)
	case b.bytes > MaxFuncBytes:
		b.exceeded = fmt.Sprintf("functions processed more than %d bytes", MaxFuncBytes)
	default:
		return nil
	}
	return errBudget
}

// room reports whether n more bytes fit, to refuse work before allocating it.
func (b *budget) room(n int) error {
	if n < 0 || b.bytes+n > MaxFuncBytes {
		return b.charge(MaxFuncBytes + 1)
	}
	return nil
}

// stepFunc is the loop counter instrument injects into range bodies.
const stepFunc = "_step"

// statefulNames are the functions instrument passes $ to.
var statefulNames = map[string]struct{}{}

// textFuncs and htmlFuncs are the function sets. Each function takes the
// execution's root data first (added by instrument, invisible to authors).
// print, printf, println, html, js and urlquery replace text/template's
// builtins of the same name with budgeted versions.
var textFuncs, htmlFuncs template.FuncMap

func init() {
	common := map[string]any{
		"default":  fnDefault,
		"upper":    func(d *execData, v any) (string, error) { return d.mapString("upper", v, strings.ToUpper) },
		"lower":    func(d *execData, v any) (string, error) { return d.mapString("lower", v, strings.ToLower) },
		"title":    func(d *execData, v any) (string, error) { return d.mapString("title", v, titleCase) },
		"trim":     func(d *execData, v any) (string, error) { return d.mapString("trim", v, strings.TrimSpace) },
		"trunc":    fnTrunc,
		"join":     fnJoin,
		"replace":  fnReplace,
		"date":     fnDate,
		"json":     fnJSON,
		"toJson":   fnJSON,
		"print":    fnPrint(fmt.Sprint),
		"println":  fnPrint(fmt.Sprintln),
		"printf":   fnPrintf,
		"urlquery": func(d *execData, v ...any) (string, error) { return d.escape("urlquery", 3, url.QueryEscape, v) },
	}
	textFuncs = template.FuncMap{stepFunc: fnStep}
	htmlFuncs = template.FuncMap{stepFunc: fnStep}
	for k, f := range common {
		statefulNames[k] = struct{}{}
		textFuncs[k] = f
		if !htmlForbidden[k] {
			htmlFuncs[k] = f
		}
	}
	textFuncs["html"] = func(d *execData, v ...any) (string, error) {
		return d.escape("html", 6, htmltemplate.HTMLEscapeString, v)
	}
	textFuncs["js"] = func(d *execData, v ...any) (string, error) {
		return d.escape("js", 6, htmltemplate.JSEscapeString, v)
	}
	statefulNames["html"] = struct{}{}
	statefulNames["js"] = struct{}{}
}

func fnStep(d *execData) (string, error) { return "", d.st.charge(0) }

// fnDefault returns v unless it is empty (nil, false, 0, "", an empty list
// or object), else def: {{ .Params.x | default "none" }}.
func fnDefault(d *execData, def, v any) (any, error) {
	if err := d.st.charge(0); err != nil {
		return nil, err
	}
	if truth, ok := template.IsTrue(v); ok && truth {
		return v, nil
	}
	return def, nil
}

func (d *execData) mapString(name string, v any, f func(string) string) (string, error) {
	s, err := scalarString(name, v)
	if err != nil {
		return "", err
	}
	if err := d.st.room(len(s) * 3); err != nil {
		return "", err
	}
	out := f(s)
	return out, d.st.charge(len(s) + len(out))
}

func titleCase(s string) string {
	// A Caser keeps state; one per call is cheap and concurrency-safe.
	return cases.Title(language.Und, cases.NoLower).String(s)
}

// fnTrunc keeps the first n characters (runes): {{ trunc 40 .Params.msg }}.
func fnTrunc(d *execData, n int, v any) (string, error) {
	s, err := scalarString("trunc", v)
	if err != nil {
		return "", err
	}
	if n < 0 {
		return "", fmt.Errorf("trunc: negative length %d", n)
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i], d.st.charge(i)
}

// fnJoin joins a list with sep: {{ join ", " .Params.names }}.
func fnJoin(d *execData, sep string, list any) (string, error) {
	var items []string
	switch l := list.(type) {
	case []string:
		items = l
	case []any:
		items = make([]string, len(l))
		for i, e := range l {
			s, err := scalarString("join", e)
			if err != nil {
				return "", err
			}
			items[i] = s
		}
	case nil:
		return "", d.st.charge(0)
	default:
		return "", fmt.Errorf("join: expects a list, got %s", kindOf(list))
	}
	n := len(sep) * max(len(items)-1, 0)
	for _, s := range items {
		n += len(s)
	}
	if err := d.st.room(n); err != nil {
		return "", err
	}
	return strings.Join(items, sep), d.st.charge(n)
}

// fnReplace replaces every old with new: {{ replace "-" " " .Params.slug }}.
func fnReplace(d *execData, old, new string, v any) (string, error) {
	s, err := scalarString("replace", v)
	if err != nil {
		return "", err
	}
	count := strings.Count(s, old)
	size := len(s) + count*(len(new)-len(old))
	if err := d.st.room(len(s) + size); err != nil {
		return "", err
	}
	out := strings.ReplaceAll(s, old, new)
	return out, d.st.charge(len(s) + len(out))
}

// fnDate formats a time in the recipient's time zone with a Go layout:
// {{ date "2006-01-02 15:04" .Params.when }}. It accepts RFC 3339 strings
// and Unix seconds.
func fnDate(d *execData, layout string, v any) (string, error) {
	if err := d.st.charge(len(layout)); err != nil {
		return "", err
	}
	if len(layout) > 256 {
		return "", errors.New("date: layout longer than 256 bytes")
	}
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339, x); err != nil {
			return "", fmt.Errorf("date: %q is not an RFC 3339 time", x)
		}
	case int64:
		t = time.Unix(x, 0)
	case int:
		t = time.Unix(int64(x), 0)
	case float64:
		t = time.Unix(0, int64(x*1e9))
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return "", fmt.Errorf("date: %q is not a number", x)
		}
		t = time.Unix(0, int64(f*1e9))
	default:
		return "", fmt.Errorf("date: expects an RFC 3339 string or Unix seconds, got %s", kindOf(v))
	}
	if d.st.loc == nil {
		d.st.loc = location(d.Recipient.TimeZone)
	}
	out := t.In(d.st.loc).Format(layout)
	return out, d.st.charge(len(out))
}

// fnJSON encodes a value as compact JSON, without HTML escaping (webhook
// bodies are not HTML; html bodies escape it for their context anyway).
func fnJSON(d *execData, v any) (string, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("json: %w", err)
	}
	out := strings.TrimSuffix(sb.String(), "\n")
	return out, d.st.charge(len(out))
}

func fnPrint(f func(...any) string) func(d *execData, args ...any) (string, error) {
	return func(d *execData, args ...any) (string, error) {
		n := len(args) + 1
		for _, a := range args {
			s, err := scalarSize("print", a)
			if err != nil {
				return "", err
			}
			n += s
		}
		if err := d.st.room(n); err != nil {
			return "", err
		}
		out := f(args...)
		return out, d.st.charge(len(out))
	}
}

// fnPrintf is fmt.Sprintf for scalar arguments. The output is bounded before
// formatting: every verb is assumed to print the longest argument padded to
// the largest width in the format, and * widths are refused.
func fnPrintf(d *execData, format string, args ...any) (string, error) {
	longest := 0
	for _, a := range args {
		s, err := scalarSize("printf", a)
		if err != nil {
			return "", err
		}
		longest = max(longest, s)
	}
	verbs, widest := 0, 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		verbs++
		num := 0
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.[]*", format[i]) >= 0; i++ {
			c := format[i]
			switch {
			case c == '*':
				return "", errors.New("printf: * widths are not supported")
			case c >= '0' && c <= '9':
				num = min(num*10+int(c-'0'), 1<<30)
				widest = max(widest, num)
			default:
				num = 0
			}
		}
	}
	if err := d.st.room(len(format) + verbs*(longest+widest+32)); err != nil {
		return "", err
	}
	out := fmt.Sprintf(format, args...)
	return out, d.st.charge(len(format) + len(out))
}

// escape runs an escaper on its arguments joined as text/template's builtins
// would. grow is the escaper's worst-case expansion.
func (d *execData) escape(name string, grow int, f func(string) string, args []any) (string, error) {
	var s string
	if len(args) == 1 {
		var err error
		if s, err = scalarString(name, args[0]); err != nil {
			return "", err
		}
	} else {
		n := 0
		for _, a := range args {
			sz, err := scalarSize(name, a)
			if err != nil {
				return "", err
			}
			n += sz + 1
		}
		if err := d.st.room(n); err != nil {
			return "", err
		}
		s = fmt.Sprint(args...)
	}
	if err := d.st.room(len(s) * (grow + 1)); err != nil {
		return "", err
	}
	out := f(s)
	return out, d.st.charge(len(s) + len(out))
}

// scalarString converts a string, number, bool or nil (→ "") to text. Lists
// and objects are refused: format them with json.
func scalarString(fn string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	case json.Number:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64), nil
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool()), nil
	}
	return "", fmt.Errorf("%s: expects text, a number or a boolean, got %s (format lists and objects with json)", fn, kindOf(v))
}

// scalarSize bounds the printed size of a scalar argument.
func scalarSize(fn string, v any) (int, error) {
	if s, ok := v.(string); ok {
		return len(s), nil
	}
	if _, err := scalarString(fn, v); err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case json.Number:
		return len(x), nil
	case fmt.Stringer:
		return len(x.String()), nil
	}
	return 32, nil // numbers and booleans
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any, Params:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "text"
	case bool:
		return "a boolean"
	case json.Number, int64, float64, int:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// locations caches time zones: time.LoadLocation parses zoneinfo on every
// call. Only valid names are kept, so the map is bounded by the tz database.
var locations sync.Map

func location(name string) *time.Location {
	if name == "" || name == "UTC" || name == "Local" {
		return time.UTC
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	locations.Store(name, l)
	return l
}
