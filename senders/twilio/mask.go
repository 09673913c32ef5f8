package twilio

import (
	"regexp"

	"github.com/herald-dev/herald/senders"
)

var digitsRe = regexp.MustCompile(`\+?[0-9]{7,15}`)

// scrub masks anything in provider text that looks like a phone number:
// Twilio quotes the number in some messages.
func scrub(s string) string {
	return digitsRe.ReplaceAllStringFunc(s, senders.MaskPhone)
}
