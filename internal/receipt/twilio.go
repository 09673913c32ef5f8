package receipt

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Query keys of the StatusCallback URL Herald gives Twilio: Twilio signs the
// whole URL, so they cannot be changed on the way back.
const (
	QueryNamespace = "ns"
	QueryName      = "n"
	QueryUID       = "uid"
	QueryMessageID = "m"
)

// CallbackQuery is the query of a StatusCallback URL for one message.
func CallbackQuery(ns, name, uid, messageID string) url.Values {
	return url.Values{QueryNamespace: {ns}, QueryName: {name}, QueryUID: {uid}, QueryMessageID: {messageID}}
}

// twilioUnsubscribed is the error Twilio reports for a number that replied STOP.
const twilioUnsubscribed = "21610"

// FromTwilioStatus reads a Twilio status callback: the form Twilio posted
// and the query of the StatusCallback URL. ok is false when the callback
// does not name a delivery. A status that ends nothing (queued, sent...)
// gives a Receipt with no State.
func FromTwilioStatus(query, form url.Values, now time.Time) (Receipt, bool) {
	r := Receipt{Provider: "twilio", MessageID: query.Get(QueryMessageID), UID: typesUID(query.Get(QueryUID)),
		ProviderMessageID: form.Get("MessageSid"), Event: strings.ToLower(form.Get("MessageStatus")),
		Time: now, Address: form.Get("To")}
	r.Notification.Namespace, r.Notification.Name = query.Get(QueryNamespace), query.Get(QueryName)
	if r.Notification.Namespace == "" || r.Notification.Name == "" || r.MessageID == "" {
		return Receipt{}, false
	}
	code := form.Get("ErrorCode")
	switch r.Event {
	case "delivered", "read":
		r.State = v1alpha1.DeliveryDelivered
	case "undelivered", "failed":
		r.State, r.Reason = v1alpha1.DeliveryFailed, v1alpha1.ReasonUndelivered
		r.Message = "Twilio reported the message " + r.Event
		if code != "" && len(code) <= 8 && isDigits(code) {
			// The error code is what a person looks up; it is the reason.
			r.Reason = "Twilio" + code
			r.Message += fmt.Sprintf(" (error %s)", code)
		}
		if code == twilioUnsubscribed {
			r.Learn = v1alpha1.ReasonUnsubscribed
		}
	default:
		r.Event = "other"
	}
	return r, true
}

// Keyword is what an inbound text asks for.
type Keyword int

const (
	NoKeyword Keyword = iota
	// OptOut: STOP and its synonyms; Twilio stops sending to the number.
	OptOut
	// OptIn: START and its synonyms; Twilio sends to the number again.
	OptIn
)

// Twilio's default opt-out and opt-in keywords (Messaging Services'
// Advanced Opt-Out can add more; it then sets OptOutType, read first).
var (
	optOutWords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
	optInWords  = []string{"START", "YES", "UNSTOP"}
)

// FromTwilioInbound reads an inbound message: the sender and whether it
// opts out or in. Twilio matches a keyword when it is the whole message,
// case and surrounding space aside.
func FromTwilioInbound(form url.Values) (from string, k Keyword) {
	from = form.Get("From")
	switch strings.ToUpper(form.Get("OptOutType")) {
	case "STOP":
		return from, OptOut
	case "START":
		return from, OptIn
	}
	word := strings.ToUpper(strings.Trim(strings.TrimSpace(form.Get("Body")), ".!"))
	for _, w := range optOutWords {
		if word == w {
			return from, OptOut
		}
	}
	for _, w := range optInWords {
		if word == w {
			return from, OptIn
		}
	}
	return from, NoKeyword
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
