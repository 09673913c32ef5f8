// Package plan decides which deliveries a Notification makes: one per
// (recipient, channel, address), each with a stable ID, before policy says
// whether and when each goes out.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Target is one delivery to make.
type Target struct {
	// ID is stable across reconciles and restarts: it keys the delivery in status.
	ID string
	// Recipient is how status names the recipient: the user name, or a masked address.
	Recipient string
	Channel   v1alpha1.Channel
	// User is the recipient's preferences; nil for inline addresses.
	User *v1alpha1.UserPreference
	// UserName is set for user recipients, even when the user does not exist.
	UserName string
	// Address is where the message goes; RawAddress is the same as one string,
	// for policy (token, phone, email or webhook provider name); empty when the
	// recipient has none for the channel.
	Address    senders.Address
	RawAddress string
	// Masked is RawAddress safe to show.
	Masked string
	// Webhook names the provider of a webhook recipient (its chat room).
	Webhook string
	// Missing is set when a user recipient does not exist.
	Missing bool
	// Source is the index of the recipient in spec.recipients, or -1 for a
	// user found through the selector (UserName names it).
	Source int
}

// Input is what planning needs.
type Input struct {
	Recipients []v1alpha1.Recipient
	// Users holds the UserPreferences named by recipients, by name; a missing
	// name means the user does not exist.
	Users map[string]*v1alpha1.UserPreference
	// Selected are the users the recipientSelector matched, sorted by name.
	Selected []*v1alpha1.UserPreference
	// Channels are the channels to deliver on: spec.channels, or every channel
	// the content defines.
	Channels []v1alpha1.Channel
}

// Targets lists every delivery in a stable order. A user named both
// explicitly and through the selector is planned once.
func Targets(in Input) []Target {
	// One target a recipient and channel, more for users with several devices.
	out := make([]Target, 0, (len(in.Recipients)+len(in.Selected))*max(1, len(in.Channels)))
	seen := make(map[string]bool, len(in.Recipients)+len(in.Selected))
	for i, r := range in.Recipients {
		prefix := "r" + strconv.Itoa(i)
		first := len(out)
		switch {
		case r.User != "":
			seen[r.User] = true
			out = appendUserTargets(out, prefix, r.User, in.Users[r.User], in.Channels)
		case r.Email != "":
			out = append(out, inline(prefix, v1alpha1.ChannelEmail, r.Email, senders.Address{Email: r.Email}))
		case r.Phone != "":
			out = append(out, inline(prefix, v1alpha1.ChannelSMS, r.Phone, senders.Address{Phone: r.Phone}))
		case r.Device != nil:
			d := *r.Device
			out = append(out, inline(prefix, v1alpha1.ChannelPush, d.Token, senders.Address{Device: &d}))
		case r.Webhook != "":
			t := inline(prefix, v1alpha1.ChannelWebhook, r.Webhook, senders.Address{})
			t.Webhook, t.Recipient, t.Masked = r.Webhook, "webhook:"+r.Webhook, r.Webhook
			out = append(out, t)
		}
		for j := first; j < len(out); j++ {
			out[j].Source = i
		}
	}
	for _, u := range in.Selected {
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		first := len(out)
		out = appendUserTargets(out, SelectedPrefix(u.Name), u.Name, u, in.Channels)
		for j := first; j < len(out); j++ {
			out[j].Source = -1
		}
	}
	return out
}

// deliveryOverhead is what one delivery can take in status besides its
// own names: every other field at the longest the ledger writes (message
// 512, providerMessageID 256, reason and provider names, four times) and
// the JSON keys.
const deliveryOverhead = 1400

// DeliveryBytes estimates the most a target's delivery can take in status.
func DeliveryBytes(t Target) int {
	return deliveryOverhead + len(t.ID) + len(t.Recipient) + len(t.Masked) + len(t.Webhook)
}

// Fits reports whether targets' deliveries fit one object: at most
// maxDeliveries of them, and at most maxBytes estimated.
func Fits(targets []Target, maxDeliveries, maxBytes int) bool {
	if len(targets) > maxDeliveries {
		return false
	}
	size := 0
	for _, t := range targets {
		size += DeliveryBytes(t)
	}
	return size <= maxBytes
}

// ChildSize is how many deliveries each child of a fan-out of n
// deliveries records: perObject, which keeps each status write small (its
// cost grows with the object, and sending waits on it), or more when
// perObject would make more than maxChildren children, up to maxDeliveries,
// the most one status holds.
func ChildSize(n, perObject, maxChildren, maxDeliveries int) int {
	need := (n + maxChildren - 1) / maxChildren
	return min(max(perObject, need), maxDeliveries)
}

// Chunk groups the recipients of targets into the spec.recipients of child
// Notifications, so that each child's deliveries fit one object (see Fits).
// A recipient's targets stay together, and a selected user becomes a
// recipient by name.
func Chunk(in Input, targets []Target, maxDeliveries, maxBytes int) [][]v1alpha1.Recipient {
	var out [][]v1alpha1.Recipient
	var cur []v1alpha1.Recipient
	count, size := 0, 0
	for i := 0; i < len(targets); {
		j, bytes := i, 0
		for j < len(targets) && sameRecipient(targets[i], targets[j]) {
			bytes += DeliveryBytes(targets[j])
			j++
		}
		if count > 0 && (count+(j-i) > maxDeliveries || size+bytes > maxBytes) {
			out, cur, count, size = append(out, cur), nil, 0, 0
		}
		t := targets[i]
		if t.Source >= 0 && t.Source < len(in.Recipients) {
			cur = append(cur, in.Recipients[t.Source])
		} else {
			cur = append(cur, v1alpha1.Recipient{User: t.UserName})
		}
		count, size = count+(j-i), size+bytes
		i = j
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func sameRecipient(a, b Target) bool {
	return a.Source == b.Source && (a.Source >= 0 || a.UserName == b.UserName)
}

// SelectedPrefix is the ID prefix of a user found through the selector: a
// short hash, since names may be longer than an ID may be.
func SelectedPrefix(name string) string {
	h := sha256.Sum256([]byte(name))
	return "s" + hex.EncodeToString(h[:6])
}

func inline(prefix string, ch v1alpha1.Channel, raw string, a senders.Address) Target {
	m := Mask(ch, raw)
	return Target{ID: prefix + "/" + string(ch), Recipient: m, Channel: ch, Address: a, RawAddress: raw, Masked: m}
}

func appendUserTargets(out []Target, prefix, name string, u *v1alpha1.UserPreference, channels []v1alpha1.Channel) []Target {
	for _, ch := range channels {
		t := Target{ID: prefix + "/" + string(ch), Recipient: name, UserName: name, Channel: ch, User: u, Missing: u == nil}
		if u == nil {
			out = append(out, t)
			continue
		}
		switch ch {
		case v1alpha1.ChannelEmail:
			t.RawAddress, t.Address = u.Spec.Email, senders.Address{Email: u.Spec.Email, Name: name}
		case v1alpha1.ChannelSMS:
			t.RawAddress, t.Address = u.Spec.Phone, senders.Address{Phone: u.Spec.Phone}
		case v1alpha1.ChannelPush:
			if len(u.Spec.Devices) == 0 {
				break
			}
			for j, d := range u.Spec.Devices {
				dt := t
				dt.ID = fmt.Sprintf("%s/push/%d", prefix, j)
				dev := v1alpha1.DeviceTarget{Platform: d.Platform, Token: d.Token}
				dt.RawAddress, dt.Address, dt.Masked = d.Token, senders.Address{Device: &dev}, Mask(ch, d.Token)
				out = append(out, dt)
			}
			continue
		}
		// A user has no webhook address of their own; policy reports NoAddress.
		t.Masked = Mask(ch, t.RawAddress)
		out = append(out, t)
	}
	return out
}

// Channels returns the channels to deliver on: the spec's list, else every
// channel the content defines, in a fixed order.
func Channels(spec []v1alpha1.Channel, defined []v1alpha1.Channel) []v1alpha1.Channel {
	src := defined
	if len(spec) > 0 {
		src = spec
	}
	var out []v1alpha1.Channel
	for _, ch := range v1alpha1.AllChannels {
		if slices.Contains(src, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// Mask hides most of an address: enough to tell two apart, not enough to use.
func Mask(ch v1alpha1.Channel, raw string) string {
	if raw == "" {
		return ""
	}
	switch ch {
	case v1alpha1.ChannelEmail:
		local, domain, ok := strings.Cut(raw, "@")
		if !ok || local == "" {
			return "***"
		}
		return local[:1] + "***@" + domain
	case v1alpha1.ChannelSMS:
		if len(raw) <= 6 {
			return "***"
		}
		return raw[:4] + strings.Repeat("*", len(raw)-6) + raw[len(raw)-2:]
	case v1alpha1.ChannelPush:
		if len(raw) <= 8 {
			return "***"
		}
		return raw[:6] + "…"
	}
	return raw
}

// Rank is ch's position in a Notification's spec.fallback, -1 when it is
// not there (then the channel is sent alongside, never held).
func Rank(fallback []v1alpha1.Channel, ch v1alpha1.Channel) int {
	return slices.Index(fallback, ch)
}

// ByRank groups targets for delivery: first every target of a channel not
// in fallback or at its first position, then each later fallback
// position's, keeping plan order within a group. Without fallback it is
// targets, as one group.
func ByRank(targets []Target, fallback []v1alpha1.Channel) [][]Target {
	if len(fallback) < 2 {
		return [][]Target{targets}
	}
	groups := make([][]Target, len(fallback))
	for _, t := range targets {
		r := max(Rank(fallback, t.Channel), 0)
		groups[r] = append(groups[r], t)
	}
	return groups
}

// RecipientOf is the recipient part of a delivery id ("r0", or a selected
// user's prefix): every delivery of one recipient shares it.
func RecipientOf(id string) string {
	r, _, _ := strings.Cut(id, "/")
	return r
}
