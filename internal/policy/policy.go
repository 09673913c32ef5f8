// Package policy decides, for one delivery (a recipient, a channel and an
// address), whether Herald sends it now, defers it, suppresses it or lets it
// expire. It applies the user's UserPreference (switched-off channels,
// category opt-outs, quiet hours, the hourly cap) and what the providers told
// us (dead devices, unsubscribed addresses), and the Notification's own
// schedule (sendAt, expiresAfter).
//
// Decide is a pure function of its Input: the caller supplies the clock and
// the recent send history, so every rule is testable without sleeping and the
// planner can re-run it on every reconcile.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// DefaultExpiresAfter applies when a Notification sets no expiresAfter; it
// matches the API default so objects created before defaulting behave alike.
const DefaultExpiresAfter = 24 * time.Hour

// Action is what to do with a delivery.
type Action string

const (
	// Send means deliver now.
	Send Action = "Send"
	// Defer means try again at Decision.Until.
	Defer Action = "Defer"
	// Suppress means never send it; Decision.Reason says why.
	Suppress Action = "Suppress"
	// Expire means it is no longer worth sending.
	Expire Action = "Expire"
)

// Decision is the verdict for one delivery.
type Decision struct {
	Action Action
	// Until is when a deferred delivery should be decided again; zero otherwise.
	Until time.Time
	// Reason is a v1alpha1 reason constant (ReasonQuietHours, ReasonOptedOut, ...);
	// empty for Send.
	Reason string
	// Message is a human-readable detail for the delivery's status. It never
	// contains the address.
	Message string
}

// State maps the decision to the delivery state the planner records.
func (d Decision) State() v1alpha1.DeliveryState {
	switch d.Action {
	case Defer:
		return v1alpha1.DeliveryDeferred
	case Suppress:
		return v1alpha1.DeliverySuppressed
	case Expire:
		return v1alpha1.DeliveryExpired
	default:
		return v1alpha1.DeliveryPending
	}
}

// Input is everything Decide looks at. The zero value of an optional field
// means "not set".
type Input struct {
	// Now is the current time, from the caller's (injectable) clock.
	Now time.Time

	// Priority of the Notification; critical overrides category opt-outs,
	// quiet hours and the hourly cap, nothing else.
	Priority v1alpha1.Priority
	// Category of the Notification (its own or its template's).
	Category string
	// Created is the Notification's creation time.
	Created time.Time
	// SendAt is the Notification's spec.sendAt; zero when unset.
	SendAt time.Time
	// ExpiresAfter is spec.expiresAfter; zero means DefaultExpiresAfter.
	ExpiresAfter time.Duration

	// Channel of this delivery.
	Channel v1alpha1.Channel
	// Address is the raw address for the channel: the device token for push,
	// the E.164 phone for sms, the email address, or the webhook provider name.
	// Empty means the recipient has none for this channel.
	Address string

	// Preference is the recipient's UserPreference, nil for inline recipients
	// (an email, phone, device or webhook written in the Notification), to
	// whom only the schedule rules apply.
	Preference *v1alpha1.UserPreference

	// SentInLastHour holds the send times of this user's deliveries (all
	// channels) in the hour before Now, in any order. Older entries are
	// ignored. When the planner decides several deliveries for one user in a
	// pass, it appends Now for each Send so the cap holds within the pass.
	SentInLastHour []time.Time
}

// Expiry is when a Notification's undelivered messages expire: expiresAfter
// (default 24h) after sendAt, or after creation when sendAt is unset.
func Expiry(created, sendAt time.Time, expiresAfter time.Duration) time.Time {
	if expiresAfter <= 0 {
		expiresAfter = DefaultExpiresAfter
	}
	base := created
	if !sendAt.IsZero() {
		base = sendAt
	}
	return base.Add(expiresAfter)
}

// Decide returns the decision for one delivery.
//
// Rules are applied in this order, the first match wins:
//  1. channel switched off by the user → Suppress ChannelDisabled
//  2. no address for the channel → Suppress NoAddress
//  3. a dead device token or an unsubscribed phone/email → Suppress
//     DeviceUnregistered / Unsubscribed
//  4. category opted out for this channel → Suppress OptedOut (not for critical)
//  5. past expiry → Expire
//  6. sendAt in the future, quiet hours, hourly cap (the last two not for
//     critical) → Defer until the latest of them ends; Expire instead when
//     that is at or after expiry.
//
// Suppressions come before expiry because they are lasting facts about the
// user: "the user switched SMS off" explains a missed message better than
// "it expired", and would have held at any time.
func Decide(in *Input) Decision {
	pref := in.Preference
	critical := in.Priority == v1alpha1.PriorityCritical

	if pref != nil && !channelEnabled(pref.Spec.Channels, in.Channel) {
		return Decision{Action: Suppress, Reason: v1alpha1.ReasonChannelDisabled,
			Message: fmt.Sprintf("the user switched the %s channel off", in.Channel)}
	}
	if in.Address == "" {
		return Decision{Action: Suppress, Reason: v1alpha1.ReasonNoAddress,
			Message: fmt.Sprintf("the recipient has no %s address", in.Channel)}
	}
	if pref != nil {
		if d, ok := deadOrUnsubscribed(&pref.Status, in.Channel, in.Address); ok {
			return d
		}
		if !critical && optedOut(pref.Spec.OptOut, in.Category, in.Channel) {
			return Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut,
				Message: fmt.Sprintf("the user opted out of category %q on %s", in.Category, in.Channel)}
		}
		if !critical && in.Category != "" && slices.ContainsFunc(pref.Status.OptedOut, func(o v1alpha1.LearnedOptOut) bool { return o.Category == in.Category }) {
			return Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut,
				Message: fmt.Sprintf("the user unsubscribed from category %q with an email's unsubscribe link", in.Category)}
		}
	}

	expiry := Expiry(in.Created, in.SendAt, in.ExpiresAfter)
	if !in.Now.Before(expiry) {
		return Decision{Action: Expire, Reason: v1alpha1.ReasonExpired,
			Message: "not sent before it expired at " + expiry.UTC().Format(time.RFC3339)}
	}

	until, reason, msg := deferral(in, pref, critical)
	if until.IsZero() {
		return Decision{Action: Send}
	}
	if !until.Before(expiry) {
		return Decision{Action: Expire, Reason: v1alpha1.ReasonExpired,
			Message: fmt.Sprintf("%s would defer it until %s, after it expires at %s",
				msg, until.UTC().Format(time.RFC3339), expiry.UTC().Format(time.RFC3339))}
	}
	return Decision{Action: Defer, Until: until, Reason: reason,
		Message: fmt.Sprintf("%s: deferred until %s", msg, until.UTC().Format(time.RFC3339))}
}

// deferral returns the earliest time at or after Now when sendAt, quiet hours
// and the cap all allow sending, or zero when that is Now. reason and msg
// name the first rule that held the delivery back: that is the answer to
// "why was it not sent when planned".
func deferral(in *Input, pref *v1alpha1.UserPreference, critical bool) (until time.Time, reason, msg string) {
	t := in.Now
	if in.SendAt.After(t) {
		t = in.SendAt
		reason, msg = v1alpha1.ReasonScheduled, "scheduled by sendAt"
	}
	if pref != nil && !critical {
		var loc *time.Location
		var qh quietWindow
		hasQH := false
		if q := pref.Spec.QuietHours; q != nil {
			if w, ok := parseWindow(q.Start, q.End); ok {
				qh, hasQH = w, true
				loc = location(pref.Spec.TimeZone)
			}
		}
		maxPerHour := int(pref.Spec.MaxPerHour)
		// Moving past quiet hours can land in a full hour and waiting for a
		// slot can land in quiet hours; both steps only move t forward and
		// each settles within a day, so a few rounds reach a fixed point.
		for range 8 {
			moved := false
			if hasQH {
				if end, quiet := qh.endAfter(t, loc); quiet {
					if reason == "" {
						reason = v1alpha1.ReasonQuietHours
						msg = fmt.Sprintf("quiet hours %s-%s (%s)", pref.Spec.QuietHours.Start, pref.Spec.QuietHours.End, loc)
					}
					t, moved = end, true
				}
			}
			if maxPerHour > 0 {
				if free, full := slotFrees(in.SentInLastHour, t, maxPerHour); full {
					if reason == "" {
						reason = v1alpha1.ReasonRateCapped
						msg = fmt.Sprintf("the user's cap of %d messages per hour is reached", maxPerHour)
					}
					t, moved = free, true
				}
			}
			if !moved {
				break
			}
		}
	}
	if !t.After(in.Now) {
		return time.Time{}, "", ""
	}
	return t, reason, msg
}

// channelEnabled reports whether the user left the channel on; unset switches are on.
func channelEnabled(sw *v1alpha1.ChannelSwitches, ch v1alpha1.Channel) bool {
	if sw == nil {
		return true
	}
	var b *bool
	switch ch {
	case v1alpha1.ChannelEmail:
		b = sw.Email
	case v1alpha1.ChannelSMS:
		b = sw.SMS
	case v1alpha1.ChannelPush:
		b = sw.Push
	case v1alpha1.ChannelWebhook:
		b = sw.Webhook
	}
	return b == nil || *b
}

func optedOut(outs []v1alpha1.OptOut, category string, ch v1alpha1.Channel) bool {
	if category == "" {
		return false
	}
	for i := range outs {
		if outs[i].Category != category {
			continue
		}
		if len(outs[i].Channels) == 0 || slices.Contains(outs[i].Channels, ch) {
			return true
		}
	}
	return false
}

func deadOrUnsubscribed(st *v1alpha1.UserPreferenceStatus, ch v1alpha1.Channel, addr string) (Decision, bool) {
	switch ch {
	case v1alpha1.ChannelPush:
		if len(st.DeadDevices) == 0 {
			return Decision{}, false
		}
		h := HashToken(addr)
		for i := range st.DeadDevices {
			if strings.EqualFold(st.DeadDevices[i].TokenHash, h) {
				return Decision{Action: Suppress, Reason: v1alpha1.ReasonDeviceUnregistered,
					Message: "the push service declared this device unregistered"}, true
			}
		}
	case v1alpha1.ChannelSMS, v1alpha1.ChannelEmail:
		if len(st.Unsubscribed) == 0 {
			return Decision{}, false
		}
		h := HashToken(addr)
		// Email addresses are matched as written and lower-cased, so an
		// unsubscribe recorded from a provider that normalises case still holds.
		hl := h
		if ch == v1alpha1.ChannelEmail {
			if l := strings.ToLower(addr); l != addr {
				hl = HashToken(l)
			}
		}
		for i := range st.Unsubscribed {
			u := &st.Unsubscribed[i]
			if u.Channel == ch && (strings.EqualFold(u.AddressHash, h) || strings.EqualFold(u.AddressHash, hl)) {
				return Decision{Action: Suppress, Reason: v1alpha1.ReasonUnsubscribed,
					Message: fmt.Sprintf("the %s address unsubscribed", ch)}, true
			}
		}
	}
	return Decision{}, false
}

// slotFrees reports whether maxPerHour sends already fall in the hour ending
// at t and, if so, when enough of them have aged out to allow one more.
func slotFrees(sent []time.Time, t time.Time, maxPerHour int) (time.Time, bool) {
	from := t.Add(-time.Hour)
	n := 0
	for _, s := range sent {
		if s.After(from) {
			n++
		}
	}
	if n < maxPerHour {
		return time.Time{}, false
	}
	// One more fits once n-maxPerHour+1 of the in-window sends are an hour old.
	in := make([]time.Time, 0, n)
	for _, s := range sent {
		if s.After(from) {
			in = append(in, s)
		}
	}
	slices.SortFunc(in, time.Time.Compare)
	return in[n-maxPerHour].Add(time.Hour), true
}

// HashToken returns the lowercase hex SHA-256 of a device token or address,
// the form stored in UserPreference status (deadDevices, unsubscribed) so the
// secret itself is not copied around.
func HashToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
