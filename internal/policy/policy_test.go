package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ptr[T any](v T) *T { return &v }

func TestDecide(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	created := now.Add(-time.Minute)
	user := func(mut func(*v1alpha1.UserPreference)) *v1alpha1.UserPreference {
		p := &v1alpha1.UserPreference{Spec: v1alpha1.UserPreferenceSpec{Email: "a@example.com", Phone: "+14155550100"}}
		if mut != nil {
			mut(p)
		}
		return p
	}
	quiet := func(start, end, tz string) func(*v1alpha1.UserPreference) {
		return func(p *v1alpha1.UserPreference) {
			p.Spec.QuietHours = &v1alpha1.QuietHours{Start: start, End: end}
			p.Spec.TimeZone = tz
		}
	}
	capped := func(n int32) func(*v1alpha1.UserPreference) {
		return func(p *v1alpha1.UserPreference) { p.Spec.MaxPerHour = n }
	}

	tests := []struct {
		name string
		in   Input
		want Decision // Message is checked for containment
	}{
		{
			name: "inline recipient is sent",
			in:   Input{Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Send},
		},
		{
			name: "user without rules is sent",
			in:   Input{Channel: v1alpha1.ChannelSMS, Address: "+14155550100", Preference: user(nil)},
			want: Decision{Action: Send},
		},
		{
			name: "channel disabled",
			in: Input{Channel: v1alpha1.ChannelSMS, Address: "+14155550100", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.Channels = &v1alpha1.ChannelSwitches{SMS: ptr(false)}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonChannelDisabled, Message: "sms channel off"},
		},
		{
			name: "channel disabled holds for critical",
			in: Input{Priority: v1alpha1.PriorityCritical, Channel: v1alpha1.ChannelPush, Address: "tok", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.Channels = &v1alpha1.ChannelSwitches{Push: ptr(false)}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonChannelDisabled},
		},
		{
			name: "other channel switched off does not matter",
			in: Input{Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.Channels = &v1alpha1.ChannelSwitches{SMS: ptr(false), Email: ptr(true)}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "webhook switched off",
			in: Input{Channel: v1alpha1.ChannelWebhook, Address: "slack", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.Channels = &v1alpha1.ChannelSwitches{Webhook: ptr(false)}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonChannelDisabled},
		},
		{
			name: "no address",
			in:   Input{Channel: v1alpha1.ChannelPush, Preference: user(nil)},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonNoAddress, Message: "no push address"},
		},
		{
			name: "no address for inline recipient",
			in:   Input{Channel: v1alpha1.ChannelSMS},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonNoAddress},
		},
		{
			name: "dead device, even critical",
			in: Input{Priority: v1alpha1.PriorityCritical, Channel: v1alpha1.ChannelPush, Address: "tok-1", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.DeadDevices = []v1alpha1.DeadDevice{{TokenHash: HashToken("tok-0")}, {TokenHash: strings.ToUpper(HashToken("tok-1"))}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonDeviceUnregistered},
		},
		{
			name: "live device next to a dead one",
			in: Input{Channel: v1alpha1.ChannelPush, Address: "tok-2", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.DeadDevices = []v1alpha1.DeadDevice{{TokenHash: HashToken("tok-1")}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "unsubscribed phone, even critical",
			in: Input{Priority: v1alpha1.PriorityCritical, Channel: v1alpha1.ChannelSMS, Address: "+14155550100", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.Unsubscribed = []v1alpha1.UnsubscribedAddress{{Channel: v1alpha1.ChannelSMS, AddressHash: HashToken("+14155550100")}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonUnsubscribed},
		},
		{
			name: "unsubscribed email matches case-insensitively",
			in: Input{Channel: v1alpha1.ChannelEmail, Address: "Alice@Example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.Unsubscribed = []v1alpha1.UnsubscribedAddress{{Channel: v1alpha1.ChannelEmail, AddressHash: HashToken("alice@example.com")}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonUnsubscribed},
		},
		{
			name: "unsubscribe on another channel does not apply",
			in: Input{Channel: v1alpha1.ChannelEmail, Address: "+14155550100", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.Unsubscribed = []v1alpha1.UnsubscribedAddress{{Channel: v1alpha1.ChannelSMS, AddressHash: HashToken("+14155550100")}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "opted out on all channels",
			in: Input{Category: "marketing", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "marketing"}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut, Message: `"marketing"`},
		},
		{
			name: "opted out on a listed channel",
			in: Input{Category: "build", Channel: v1alpha1.ChannelSMS, Address: "+1", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "build", Channels: []v1alpha1.Channel{v1alpha1.ChannelSMS}}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut},
		},
		{
			name: "opt-out for other channels does not apply",
			in: Input{Category: "build", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "build", Channels: []v1alpha1.Channel{v1alpha1.ChannelSMS}}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "opt-out of another category does not apply",
			in: Input{Category: "build", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "marketing"}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "one-click unsubscribe from a category applies on every channel",
			in: Input{Category: "newsletter", Channel: v1alpha1.ChannelSMS, Address: "+1", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.OptedOut = []v1alpha1.LearnedOptOut{{Category: "newsletter", Reason: v1alpha1.ReasonOneClickUnsubscribe}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut, Message: "unsubscribe link"},
		},
		{
			name: "one-click unsubscribe from another category does not apply",
			in: Input{Category: "build", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.OptedOut = []v1alpha1.LearnedOptOut{{Category: "newsletter"}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "critical overrides a one-click unsubscribe",
			in: Input{Priority: v1alpha1.PriorityCritical, Category: "security", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Status.OptedOut = []v1alpha1.LearnedOptOut{{Category: "security"}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "critical overrides an opt-out",
			in: Input{Priority: v1alpha1.PriorityCritical, Category: "security", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "security"}}
			})},
			want: Decision{Action: Send},
		},
		{
			name: "opt-out wins over expiry",
			in: Input{Now: now, Created: now.Add(-48 * time.Hour), Category: "m", Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(func(p *v1alpha1.UserPreference) {
				p.Spec.OptOut = []v1alpha1.OptOut{{Category: "m"}}
			})},
			want: Decision{Action: Suppress, Reason: v1alpha1.ReasonOptedOut},
		},
		{
			name: "expired after the default 24h",
			in:   Input{Now: now, Created: now.Add(-24 * time.Hour), Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Expire, Reason: v1alpha1.ReasonExpired, Message: "expired at 2025-06-10T12:00:00Z"},
		},
		{
			name: "not yet expired at 24h minus a second",
			in:   Input{Now: now, Created: now.Add(-24*time.Hour + time.Second), Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Send},
		},
		{
			name: "expiresAfter counts from sendAt",
			in: Input{Now: now, Created: now.Add(-10 * time.Hour), SendAt: now.Add(-30 * time.Minute), ExpiresAfter: time.Hour,
				Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Send},
		},
		{
			name: "expired after custom expiresAfter",
			in: Input{Now: now, Created: now.Add(-2 * time.Hour), ExpiresAfter: time.Hour,
				Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Expire, Reason: v1alpha1.ReasonExpired},
		},
		{
			name: "expiry applies to critical",
			in: Input{Now: now, Priority: v1alpha1.PriorityCritical, Created: now.Add(-2 * time.Hour), ExpiresAfter: time.Hour,
				Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Expire, Reason: v1alpha1.ReasonExpired},
		},
		{
			name: "sendAt in the future defers",
			in:   Input{Now: now, Created: created, SendAt: now.Add(time.Hour), Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonScheduled, Until: now.Add(time.Hour)},
		},
		{
			name: "sendAt holds for critical",
			in: Input{Now: now, Priority: v1alpha1.PriorityCritical, Created: created, SendAt: now.Add(time.Hour),
				Channel: v1alpha1.ChannelEmail, Address: "a@example.com"},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonScheduled, Until: now.Add(time.Hour)},
		},
		{
			name: "quiet hours defer until they end",
			// 12:00 UTC is 08:00 in New York (EDT).
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("07:00", "09:30", "America/New_York"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: time.Date(2025, 6, 10, 9, 30, 0, 0, ny), Message: "quiet hours 07:00-09:30 (America/New_York)"},
		},
		{
			name: "outside quiet hours is sent",
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("09:00", "17:00", "America/New_York"))},
			want: Decision{Action: Send},
		},
		{
			name: "quiet hours end is exclusive",
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("06:00", "08:00", "America/New_York"))},
			want: Decision{Action: Send},
		},
		{
			name: "quiet hours start is inclusive",
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("08:00", "08:01", "America/New_York"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: now.Add(time.Minute)},
		},
		{
			name: "window across midnight, before midnight",
			in: Input{Now: time.Date(2025, 6, 10, 23, 15, 0, 0, ny), Created: created, Channel: v1alpha1.ChannelSMS, Address: "+1",
				Preference: user(quiet("22:00", "07:00", "America/New_York"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: time.Date(2025, 6, 11, 7, 0, 0, 0, ny)},
		},
		{
			name: "window across midnight, after midnight",
			in: Input{Now: time.Date(2025, 6, 11, 3, 0, 0, 0, ny), Created: created, Channel: v1alpha1.ChannelSMS, Address: "+1",
				Preference: user(quiet("22:00", "07:00", "America/New_York"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: time.Date(2025, 6, 11, 7, 0, 0, 0, ny)},
		},
		{
			name: "window across midnight, daytime is free",
			in: Input{Now: time.Date(2025, 6, 11, 12, 0, 0, 0, ny), Created: time.Date(2025, 6, 11, 11, 0, 0, 0, ny), Channel: v1alpha1.ChannelSMS, Address: "+1",
				Preference: user(quiet("22:00", "07:00", "America/New_York"))},
			want: Decision{Action: Send},
		},
		{
			name: "quiet hours use UTC when no time zone",
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("11:00", "13:00", ""))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: now.Add(time.Hour)},
		},
		{
			name: "quiet hours fall back to UTC for an invalid zone",
			in:   Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(quiet("11:00", "13:00", "Mars/Olympus"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: now.Add(time.Hour)},
		},
		{
			name: "critical ignores quiet hours",
			in: Input{Now: now, Priority: v1alpha1.PriorityCritical, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com",
				Preference: user(quiet("07:00", "09:30", "America/New_York"))},
			want: Decision{Action: Send},
		},
		{
			name: "sendAt inside quiet hours defers to their end, reason Scheduled",
			in: Input{Now: now, Created: created, SendAt: time.Date(2025, 6, 10, 23, 0, 0, 0, ny), Channel: v1alpha1.ChannelEmail, Address: "a@example.com",
				Preference: user(quiet("22:00", "07:00", "America/New_York"))},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonScheduled, Until: time.Date(2025, 6, 11, 7, 0, 0, 0, ny)},
		},
		{
			name: "deferral past expiry expires",
			in: Input{Now: now, Created: created, ExpiresAfter: time.Hour, Channel: v1alpha1.ChannelEmail, Address: "a@example.com",
				Preference: user(quiet("07:00", "09:30", "America/New_York"))},
			want: Decision{Action: Expire, Reason: v1alpha1.ReasonExpired, Message: "quiet hours 07:00-09:30 (America/New_York) would defer it until 2025-06-10T13:30:00Z, after it expires at 2025-06-10T12:59:00Z"},
		},
		{
			name: "deferral ending exactly at expiry expires",
			in: Input{Now: now, Created: now.Add(-30 * time.Minute), ExpiresAfter: 2 * time.Hour, Channel: v1alpha1.ChannelEmail, Address: "a@example.com",
				Preference: user(quiet("07:00", "09:30", "America/New_York"))},
			want: Decision{Action: Expire, Reason: v1alpha1.ReasonExpired},
		},
		{
			name: "under the cap is sent",
			in: Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(capped(3)),
				SentInLastHour: []time.Time{now.Add(-10 * time.Minute), now.Add(-20 * time.Minute)}},
			want: Decision{Action: Send},
		},
		{
			name: "cap reached defers until the oldest send is an hour old",
			in: Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(capped(3)),
				SentInLastHour: []time.Time{now.Add(-10 * time.Minute), now.Add(-50 * time.Minute), now.Add(-20 * time.Minute)}},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonRateCapped, Until: now.Add(10 * time.Minute), Message: "cap of 3 messages per hour"},
		},
		{
			name: "over the cap waits for enough sends to age out",
			in: Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(capped(2)),
				SentInLastHour: []time.Time{now.Add(-10 * time.Minute), now.Add(-50 * time.Minute), now.Add(-20 * time.Minute), now.Add(-40 * time.Minute)}},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonRateCapped, Until: now.Add(40 * time.Minute)},
		},
		{
			name: "sends older than an hour do not count",
			in: Input{Now: now, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(capped(1)),
				SentInLastHour: []time.Time{now.Add(-time.Hour), now.Add(-2 * time.Hour)}},
			want: Decision{Action: Send},
		},
		{
			name: "critical ignores the cap",
			in: Input{Now: now, Priority: v1alpha1.PriorityCritical, Created: created, Channel: v1alpha1.ChannelEmail, Address: "a@example.com", Preference: user(capped(1)),
				SentInLastHour: []time.Time{now.Add(-time.Minute)}},
			want: Decision{Action: Send},
		},
		{
			name: "cap slot inside quiet hours waits for both",
			// Slot frees at 08:10 New York time, inside 08:05-09:00 quiet hours.
			in: Input{Now: time.Date(2025, 6, 10, 8, 0, 0, 0, ny), Created: time.Date(2025, 6, 10, 7, 0, 0, 0, ny), Channel: v1alpha1.ChannelEmail, Address: "a@example.com",
				Preference:     user(func(p *v1alpha1.UserPreference) { quiet("08:05", "09:00", "America/New_York")(p); capped(1)(p) }),
				SentInLastHour: []time.Time{time.Date(2025, 6, 10, 7, 10, 0, 0, ny)}},
			want: Decision{Action: Defer, Reason: v1alpha1.ReasonRateCapped, Until: time.Date(2025, 6, 10, 9, 0, 0, 0, ny)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.Now.IsZero() {
				in.Now = now
			}
			if in.Created.IsZero() {
				in.Created = created
			}
			got := Decide(&in)
			checkDecision(t, got, tt.want)
		})
	}
}

func checkDecision(t *testing.T, got, want Decision) {
	t.Helper()
	if got.Action != want.Action || got.Reason != want.Reason || !got.Until.Equal(want.Until) {
		t.Fatalf("got %s/%s until %s (%s), want %s/%s until %s", got.Action, got.Reason, got.Until, got.Message, want.Action, want.Reason, want.Until)
	}
	if !strings.Contains(got.Message, want.Message) {
		t.Fatalf("message %q does not contain %q", got.Message, want.Message)
	}
	if got.Action != Send && got.Message == "" {
		t.Fatalf("%s without a message", got.Action)
	}
}

// DST: quiet hours follow the user's wall clock on the days New York moves
// its clocks (2025-03-09 02:00 → 03:00, 2025-11-02 02:00 → 01:00).
func TestDecideQuietHoursDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name       string
		start, end string
		now        time.Time
		want       time.Time // zero: send now
	}{
		{"spring forward: overnight window is an hour shorter", "23:00", "07:00",
			time.Date(2025, 3, 8, 23, 30, 0, 0, ny), utc("2025-03-09T11:00:00Z")},
		{"spring forward: the 23:30 deferral lasts 6h30 of absolute time", "23:00", "07:00",
			utc("2025-03-09T04:30:00Z"), utc("2025-03-09T11:00:00Z")},
		{"spring forward: end in the skipped hour ends at the transition", "01:00", "02:30",
			time.Date(2025, 3, 9, 1, 45, 0, 0, ny), utc("2025-03-09T07:00:00Z")}, // 03:00 EDT
		{"spring forward: after the jump, window with a skipped end is over", "01:00", "02:30",
			utc("2025-03-09T07:05:00Z"), time.Time{}}, // 03:05 EDT
		{"spring forward: start in the skipped hour", "02:15", "04:00",
			utc("2025-03-09T07:10:00Z"), utc("2025-03-09T08:00:00Z")}, // 03:10 EDT → 04:00 EDT
		{"fall back: overnight window is an hour longer", "23:00", "07:00",
			time.Date(2025, 11, 1, 23, 30, 0, 0, ny), utc("2025-11-02T12:00:00Z")}, // 07:00 EST
		{"fall back: end in the repeated hour, first pass", "22:00", "01:30",
			utc("2025-11-02T04:30:00Z"), utc("2025-11-02T05:30:00Z")}, // 00:30 EDT → 01:30 EDT
		{"fall back: end in the repeated hour, second pass", "22:00", "01:30",
			utc("2025-11-02T06:10:00Z"), utc("2025-11-02T06:30:00Z")}, // 01:10 EST → 01:30 EST
		{"fall back: after the window", "22:00", "01:30",
			utc("2025-11-02T06:40:00Z"), time.Time{}}, // 01:40 EST
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Now: tt.now, Created: tt.now, Channel: v1alpha1.ChannelPush, Address: "tok",
				Preference: &v1alpha1.UserPreference{Spec: v1alpha1.UserPreferenceSpec{
					TimeZone: "America/New_York", QuietHours: &v1alpha1.QuietHours{Start: tt.start, End: tt.end}}}}
			got := Decide(&in)
			if tt.want.IsZero() {
				checkDecision(t, got, Decision{Action: Send})
				return
			}
			checkDecision(t, got, Decision{Action: Defer, Reason: v1alpha1.ReasonQuietHours, Until: tt.want})
		})
	}
}

func TestDecisionState(t *testing.T) {
	for a, want := range map[Action]v1alpha1.DeliveryState{
		Send: v1alpha1.DeliveryPending, Defer: v1alpha1.DeliveryDeferred,
		Suppress: v1alpha1.DeliverySuppressed, Expire: v1alpha1.DeliveryExpired,
	} {
		if got := (Decision{Action: a}).State(); got != want {
			t.Errorf("%s: got %s, want %s", a, got, want)
		}
	}
}

func TestExpiry(t *testing.T) {
	c := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := Expiry(c, time.Time{}, 0); !got.Equal(c.Add(24 * time.Hour)) {
		t.Errorf("default: %s", got)
	}
	if got := Expiry(c, c.Add(time.Hour), 30*time.Minute); !got.Equal(c.Add(90 * time.Minute)) {
		t.Errorf("sendAt: %s", got)
	}
}

func TestHashToken(t *testing.T) {
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal(got)
	}
}

func TestValidatePreference(t *testing.T) {
	tests := []struct {
		name       string
		spec       v1alpha1.UserPreferenceSpec
		wantField  string
		wantReason string
	}{
		{name: "empty"},
		{name: "valid", spec: v1alpha1.UserPreferenceSpec{TimeZone: "Europe/Berlin", Locale: "pt-BR"}},
		{name: "UTC", spec: v1alpha1.UserPreferenceSpec{TimeZone: "UTC", Locale: "ko"}},
		{name: "unknown zone", spec: v1alpha1.UserPreferenceSpec{TimeZone: "Mars/Olympus"}, wantField: "spec.timeZone", wantReason: v1alpha1.ReasonInvalidTimeZone},
		{name: "Local is not a user's zone", spec: v1alpha1.UserPreferenceSpec{TimeZone: "Local"}, wantField: "spec.timeZone", wantReason: v1alpha1.ReasonInvalidTimeZone},
		{name: "path traversal", spec: v1alpha1.UserPreferenceSpec{TimeZone: "../etc/passwd"}, wantField: "spec.timeZone", wantReason: v1alpha1.ReasonInvalidTimeZone},
		{name: "unknown language", spec: v1alpha1.UserPreferenceSpec{Locale: "xx"}, wantField: "spec.locale", wantReason: v1alpha1.ReasonInvalidLocale},
		{name: "ill-formed tag", spec: v1alpha1.UserPreferenceSpec{Locale: "en-US-toolongsubtag"}, wantField: "spec.locale", wantReason: v1alpha1.ReasonInvalidLocale},
		{name: "both wrong reports the zone first", spec: v1alpha1.UserPreferenceSpec{TimeZone: "Nowhere", Locale: "xx"}, wantField: "spec.timeZone", wantReason: v1alpha1.ReasonInvalidTimeZone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePreference(&tt.spec)
			if tt.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if fe.Field != tt.wantField || fe.Reason != tt.wantReason || !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("got %s/%s (%v)", fe.Field, fe.Reason, err)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	pref := &v1alpha1.UserPreference{Spec: v1alpha1.UserPreferenceSpec{
		TimeZone:   "America/New_York",
		QuietHours: &v1alpha1.QuietHours{Start: "22:00", End: "07:00"},
		MaxPerHour: 10,
		OptOut:     []v1alpha1.OptOut{{Category: "marketing"}},
	}, Status: v1alpha1.UserPreferenceStatus{DeadDevices: []v1alpha1.DeadDevice{{TokenHash: HashToken("old")}}}}
	in := Input{Now: now, Created: now.Add(-time.Minute), Category: "build", Channel: v1alpha1.ChannelPush, Address: "token",
		Preference: pref, SentInLastHour: []time.Time{now.Add(-time.Minute), now.Add(-2 * time.Minute)}}
	b.Run("send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := Decide(&in); d.Action != Send {
				b.Fatal(d)
			}
		}
	})
	night := in
	night.Now = time.Date(2025, 6, 10, 23, 0, 0, 0, location("America/New_York"))
	night.Created = night.Now
	b.Run("quiet-hours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d := Decide(&night); d.Action != Defer {
				b.Fatal(d)
			}
		}
	})
}

// Across a whole year, in zones with 1-hour and 30-minute DST shifts and
// none, a quiet-hours deferral always ends at a moment the window allows,
// within a day and no later than needed, and a delivery outside the window
// is never deferred.
func TestQuietHoursProperties(t *testing.T) {
	windows := [][2]string{{"22:00", "07:00"}, {"01:00", "02:30"}, {"02:15", "03:45"}, {"00:00", "23:59"}, {"12:00", "13:00"}, {"23:30", "00:15"}}
	for _, zone := range []string{"America/New_York", "Australia/Lord_Howe", "Europe/London", "Asia/Kolkata", "America/Santiago"} {
		loc := mustLoc(t, zone)
		for _, w := range windows {
			qw, _ := parseWindow(w[0], w[1])
			pref := &v1alpha1.UserPreference{Spec: v1alpha1.UserPreferenceSpec{TimeZone: zone, QuietHours: &v1alpha1.QuietHours{Start: w[0], End: w[1]}}}
			start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			for now := start; now.Year() == 2025; now = now.Add(47 * time.Minute) {
				in := Input{Now: now, Created: now, ExpiresAfter: 48 * time.Hour, Channel: v1alpha1.ChannelPush, Address: "t", Preference: pref}
				d := Decide(&in)
				_, quiet := qw.endAfter(now, loc)
				switch {
				case !quiet && d.Action != Send:
					t.Fatalf("%s %v at %s: %s outside the window", zone, w, now.In(loc), d.Action)
				case quiet && d.Action != Defer:
					t.Fatalf("%s %v at %s: %s inside the window", zone, w, now.In(loc), d.Action)
				case quiet:
					if !d.Until.After(now) || d.Until.Sub(now) > 25*time.Hour {
						t.Fatalf("%s %v at %s: until %s", zone, w, now.In(loc), d.Until.In(loc))
					}
					// The first allowed moment: a minute earlier is still quiet.
					if _, q := qw.endAfter(d.Until.Add(-time.Minute), loc); !q {
						t.Fatalf("%s %v at %s: until %s is later than the window's end", zone, w, now.In(loc), d.Until.In(loc))
					}
					in.Now = d.Until
					if again := Decide(&in); again.Action != Send {
						t.Fatalf("%s %v at %s: deferred until %s, then %s until %s", zone, w, now.In(loc), d.Until.In(loc), again.Action, again.Until.In(loc))
					}
				}
			}
		}
	}
}

func TestValidateNotification(t *testing.T) {
	created := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(created.Add(d)); return &t }
	big := &apiextensionsv1.JSON{Raw: []byte(`{"x":"` + strings.Repeat("a", MaxParamsBytes) + `"}`)}
	dev := func(tok string) v1alpha1.Recipient {
		return v1alpha1.Recipient{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformIOS, Token: tok}}
	}
	cases := []struct {
		name  string
		spec  v1alpha1.NotificationSpec
		field string // "" when valid
	}{
		{"fine", v1alpha1.NotificationSpec{Recipients: []v1alpha1.Recipient{{User: "a"}, {User: "b"}, {Email: "a@x.io"}, dev("t1"), dev("t2")}, SendAt: at(364 * 24 * time.Hour)}, ""},
		{"params too large", v1alpha1.NotificationSpec{Params: big}, "spec.params"},
		{"sendAt over a year ahead", v1alpha1.NotificationSpec{SendAt: at(366 * 24 * time.Hour)}, "spec.sendAt"},
		{"user twice", v1alpha1.NotificationSpec{Recipients: []v1alpha1.Recipient{{User: "a"}, {Email: "a@x.io"}, {User: "a"}}}, "spec.recipients[2]"},
		{"email twice, any case", v1alpha1.NotificationSpec{Recipients: []v1alpha1.Recipient{{Email: "A@x.io"}, {Email: "a@x.io"}}}, "spec.recipients[1]"},
		{"device twice", v1alpha1.NotificationSpec{Recipients: []v1alpha1.Recipient{dev("t1"), dev("t1")}}, "spec.recipients[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateNotification(&tc.spec, created)
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.field+":")):
				t.Errorf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}
