package render

import (
	"strconv"
	"unicode/utf8"

	"github.com/herald-dev/herald/senders"
)

// Provider limits checked on every rendered message.
const (
	// MaxAPNsPayload is APNs' limit for a regular remote notification.
	MaxAPNsPayload = 4096
	// MaxFCMPayload is FCM's limit for a message's notification and data.
	MaxFCMPayload = 4096
	// MaxSMSSegments bounds a text's concatenated segments; beyond it
	// carriers drop or bill absurdly (Twilio's recommendation is 10).
	MaxSMSSegments = 10
)

// SMSEncoding is how an SMS text travels.
type SMSEncoding string

const (
	// GSM7 packs the GSM 03.38 alphabet into 7 bits: 160 characters, or 153
	// per segment when concatenated; extension characters take two.
	GSM7 SMSEncoding = "GSM-7"
	// UCS2 is used as soon as one character is outside GSM 03.38: 70 UTF-16
	// code units, or 67 per segment when concatenated.
	UCS2 SMSEncoding = "UCS-2"
)

// gsmBasic is the GSM 03.38 default alphabet; gsmExtension the characters
// sent as ESC + a code (two septets).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

// gsmUnits maps a character to its septets: 1 basic, 2 extension; absent
// means not GSM-7. asciiUnits is the same for ASCII, the common case.
var (
	gsmUnits   = map[rune]uint8{}
	asciiUnits [utf8.RuneSelf]uint8
)

func init() {
	for _, r := range gsmBasic {
		gsmUnits[r] = 1
	}
	for _, r := range gsmExtension {
		gsmUnits[r] = 2
	}
	for r := range asciiUnits {
		asciiUnits[r] = gsmUnits[rune(r)]
	}
}

func gsmSeptets(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiUnits[r]
	}
	return gsmUnits[r]
}

// SMSSegments returns how many segments a text needs and its encoding. A
// character never straddles two segments (an extension character's escape
// stays with it, as does a UTF-16 surrogate pair), as carriers do.
func SMSSegments(text string) (int, SMSEncoding) {
	if text == "" {
		return 0, GSM7
	}
	enc := GSM7
	for _, r := range text {
		if gsmSeptets(r) != 0 {
			continue
		}
		enc = UCS2
		break
	}
	single, multi := 160, 153
	if enc == UCS2 {
		single, multi = 70, 67
	}
	total := 0
	for _, r := range text {
		total += units(r, enc)
	}
	if total <= single {
		return 1, enc
	}
	segs, used := 1, 0
	for _, r := range text {
		u := units(r, enc)
		if used+u > multi {
			segs++
			used = 0
		}
		used += u
	}
	return segs, enc
}

// units is a character's size in septets (GSM-7) or UTF-16 code units (UCS-2).
func units(r rune, enc SMSEncoding) int {
	if enc == GSM7 {
		return int(gsmSeptets(r))
	}
	if r >= 0x10000 && r != utf8.RuneError {
		return 2
	}
	return 1
}

// APNsPayloadSize is the size of the JSON payload an APNs sender posts for
// this push: {"aps":{"alert":{"title":..,"body":..},"sound":..,"badge":..},
// data keys at the top level}, encoded as encoding/json does.
func APNsPayloadSize(p *senders.Push) int {
	n := len(`{"aps":{"alert":{`) + alertSize(p.Title, p.Body) + len(`}`)
	if p.Sound != "" {
		n += len(`,"sound":`) + jsonStringSize(p.Sound)
	}
	if p.Badge != nil {
		n += len(`,"badge":`) + len(strconv.Itoa(int(*p.Badge)))
	}
	n += len(`}`)
	for k, v := range p.Data {
		n += len(`,:`) + jsonStringSize(k) + jsonStringSize(v)
	}
	return n + len(`}`)
}

// FCMPayloadSize is the size of the part of an FCM message the 4 KiB limit
// applies to: {"notification":{"title":..,"body":..},"data":{..}}.
func FCMPayloadSize(p *senders.Push) int {
	n := len(`{"notification":{`) + alertSize(p.Title, p.Body) + len(`}`)
	if len(p.Data) > 0 {
		n += len(`,"data":{}`) + len(p.Data) - 1
		for k, v := range p.Data {
			n += len(`:`) + jsonStringSize(k) + jsonStringSize(v)
		}
	}
	return n + len(`}`)
}

func alertSize(title, body string) int {
	n := 0
	if title != "" {
		n += len(`"title":`) + jsonStringSize(title)
	}
	if body != "" {
		if n > 0 {
			n++
		}
		n += len(`"body":`) + jsonStringSize(body)
	}
	return n
}

// jsonStringSize is len(json.Marshal(s)) without encoding: the quotes, short
// escapes, \u00XX for other controls and for <, >, & (encoding/json's HTML
// escaping, which provider SDKs keep), \ufffd for invalid UTF-8 and
// \u2028/\u2029.
func jsonStringSize(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
