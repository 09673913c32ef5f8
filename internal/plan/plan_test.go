package plan

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

var (
	email   = v1alpha1.ChannelEmail
	sms     = v1alpha1.ChannelSMS
	push    = v1alpha1.ChannelPush
	webhook = v1alpha1.ChannelWebhook
	all     = []v1alpha1.Channel{push, sms, email, webhook}
)

func pref(name, mail, phone string, tokens ...string) *v1alpha1.UserPreference {
	u := &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.UserPreferenceSpec{Email: mail, Phone: phone}}
	for _, tok := range tokens {
		u.Spec.Devices = append(u.Spec.Devices, v1alpha1.Device{Platform: v1alpha1.PlatformIOS, Token: tok})
	}
	return u
}

type row struct {
	id, recipient string
	ch            v1alpha1.Channel
	raw, masked   string
	user          string
	missing       bool
}

func rows(ts []Target) []row {
	out := make([]row, len(ts))
	for i, t := range ts {
		out[i] = row{t.ID, t.Recipient, t.Channel, t.RawAddress, t.Masked, t.UserName, t.Missing}
	}
	return out
}

func TestTargets(t *testing.T) {
	alice := pref("alice", "alice@example.com", "+14155550100", "aaaaaaaaaaaa1111", "bbbbbbbbbbbb2222")
	bob := pref("bob", "bob@example.com", "")
	carol := pref("carol", "carol@example.com", "")
	tests := []struct {
		name string
		in   Input
		want []row
	}{{
		name: "a user gets one delivery per channel and one per device",
		in:   Input{Recipients: []v1alpha1.Recipient{{User: "alice"}}, Users: map[string]*v1alpha1.UserPreference{"alice": alice}, Channels: all},
		want: []row{
			{"r0/push/0", "alice", push, "aaaaaaaaaaaa1111", "aaaaaa…", "alice", false},
			{"r0/push/1", "alice", push, "bbbbbbbbbbbb2222", "bbbbbb…", "alice", false},
			{"r0/sms", "alice", sms, "+14155550100", "+141******00", "alice", false},
			{"r0/email", "alice", email, "alice@example.com", "a***@example.com", "alice", false},
			{"r0/webhook", "alice", webhook, "", "", "alice", false},
		},
	}, {
		name: "inline recipients, one delivery each on their own channel",
		in: Input{Recipients: []v1alpha1.Recipient{
			{Email: "x@example.org"}, {Phone: "+4915112345678"},
			{Device: &v1alpha1.DeviceTarget{Platform: v1alpha1.PlatformAndroid, Token: "tokentokentoken"}}, {Webhook: "ops-room"},
		}, Channels: all},
		want: []row{
			{"r0/email", "x***@example.org", email, "x@example.org", "x***@example.org", "", false},
			{"r1/sms", "+491********78", sms, "+4915112345678", "+491********78", "", false},
			{"r2/push", "tokent…", push, "tokentokentoken", "tokent…", "", false},
			{"r3/webhook", "webhook:ops-room", webhook, "ops-room", "ops-room", "", false},
		},
	}, {
		name: "a missing user is planned, marked missing",
		in:   Input{Recipients: []v1alpha1.Recipient{{User: "ghost"}}, Users: map[string]*v1alpha1.UserPreference{}, Channels: []v1alpha1.Channel{email}},
		want: []row{{"r0/email", "ghost", email, "", "", "ghost", true}},
	}, {
		name: "a user with no devices gets one push delivery without an address (policy: NoAddress)",
		in:   Input{Recipients: []v1alpha1.Recipient{{User: "bob"}}, Users: map[string]*v1alpha1.UserPreference{"bob": bob}, Channels: []v1alpha1.Channel{push, email}},
		want: []row{
			{"r0/push", "bob", push, "", "", "bob", false},
			{"r0/email", "bob", email, "bob@example.com", "b***@example.com", "bob", false},
		},
	}, {
		name: "a user named and selected is planned once, under the explicit entry",
		in: Input{Recipients: []v1alpha1.Recipient{{User: "bob"}}, Users: map[string]*v1alpha1.UserPreference{"bob": bob},
			Selected: []*v1alpha1.UserPreference{bob, carol}, Channels: []v1alpha1.Channel{email}},
		want: []row{
			{"r0/email", "bob", email, "bob@example.com", "b***@example.com", "bob", false},
			{SelectedPrefix("carol") + "/email", "carol", email, "carol@example.com", "c***@example.com", "carol", false},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rows(Targets(tc.in))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// IDs are stable (the same input plans the same IDs), unique, and fit the
// API's 64 characters whatever the user's name.
func TestTargetIDs(t *testing.T) {
	long := strings.Repeat("a", 253)
	var selected []*v1alpha1.UserPreference
	for _, n := range []string{long, "b", "c"} {
		selected = append(selected, pref(n, n+"@example.com", "+14155550100", "tok1tok1tok1", "tok2tok2tok2"))
	}
	in := Input{Selected: selected, Channels: all}
	a, b := Targets(in), Targets(in)
	seen := map[string]bool{}
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Errorf("unstable ID %s vs %s", a[i].ID, b[i].ID)
		}
		if seen[a[i].ID] {
			t.Errorf("duplicate ID %s", a[i].ID)
		}
		seen[a[i].ID] = true
		if len(a[i].ID) > 64 {
			t.Errorf("ID %q longer than 64", a[i].ID)
		}
	}
	if SelectedPrefix("b") == SelectedPrefix("c") || !strings.HasPrefix(SelectedPrefix(long), "s") {
		t.Error("selected prefixes collide or lack their marker")
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		ch        v1alpha1.Channel
		raw, want string
	}{
		{email, "alice@example.com", "a***@example.com"},
		{email, "@example.com", "***"},
		{email, "not-an-address", "***"},
		{sms, "+14155550100", "+141******00"},
		{sms, "+12345", "***"},
		{push, "0123456789abcdef", "012345…"},
		{push, "short", "***"},
		{webhook, "ops-room", "ops-room"},
		{email, "", ""},
	}
	for _, tc := range tests {
		got := Mask(tc.ch, tc.raw)
		if got != tc.want {
			t.Errorf("Mask(%s, %q) = %q, want %q", tc.ch, tc.raw, got, tc.want)
		}
		if tc.ch != webhook && len(tc.raw) > 8 && strings.Contains(got, tc.raw) {
			t.Errorf("Mask(%s, %q) shows the address", tc.ch, tc.raw)
		}
	}
}

func TestChannels(t *testing.T) {
	tests := []struct {
		name          string
		spec, defined []v1alpha1.Channel
		want          []v1alpha1.Channel
	}{
		{"default: every channel the content defines, in a fixed order", nil, []v1alpha1.Channel{webhook, email, sms}, []v1alpha1.Channel{sms, email, webhook}},
		{"the spec's list wins", []v1alpha1.Channel{email}, []v1alpha1.Channel{sms, email}, []v1alpha1.Channel{email}},
		{"a spec channel the content lacks is kept (NoContent later)", []v1alpha1.Channel{push}, []v1alpha1.Channel{email}, []v1alpha1.Channel{push}},
		{"nothing defined", nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Channels(tc.spec, tc.defined); !slices.Equal(got, tc.want) {
				t.Errorf("Channels = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChildSize(t *testing.T) {
	for _, c := range []struct{ n, per, children, most, want int }{
		{n: 10_000, per: 32, children: 1000, most: 2000, want: 32},   // 313 children
		{n: 32_000, per: 32, children: 1000, most: 2000, want: 32},   // exactly 1000
		{n: 32_001, per: 32, children: 1000, most: 2000, want: 33},   // one more: larger children
		{n: 100_000, per: 32, children: 1000, most: 2000, want: 100}, // 1000 children of 100
		{n: 5_000_000, per: 32, children: 1000, most: 2000, want: 2000},
		{n: 10, per: 32, children: 1000, most: 2000, want: 32},
	} {
		if got := ChildSize(c.n, c.per, c.children, c.most); got != c.want {
			t.Errorf("ChildSize(%d, %d, %d, %d) = %d, want %d", c.n, c.per, c.children, c.most, got, c.want)
		}
	}
}

func TestChunk(t *testing.T) {
	// alice has two devices: three deliveries on push+email that must stay
	// in one child; an inline email; two selected users.
	in := Input{
		Recipients: []v1alpha1.Recipient{{User: "alice"}, {Email: "x@example.com"}},
		Users:      map[string]*v1alpha1.UserPreference{"alice": pref("alice", "a@example.com", "", "tok-1-aaaaaaaa", "tok-2-bbbbbbbb")},
		Selected:   []*v1alpha1.UserPreference{pref("bob", "b@example.com", ""), pref("carol", "c@example.com", "")},
		Channels:   []v1alpha1.Channel{push, email},
	}
	targets := Targets(in)
	if len(targets) != 8 { // alice 2 push + email, x email, bob and carol push (NoAddress) + email
		t.Fatalf("%d targets: %+v", len(targets), rows(targets))
	}
	names := func(chunks [][]v1alpha1.Recipient) [][]string {
		var out [][]string
		for _, c := range chunks {
			var s []string
			for _, r := range c {
				s = append(s, r.User+r.Email)
			}
			out = append(out, s)
		}
		return out
	}
	cases := []struct {
		name          string
		maxDeliveries int
		maxBytes      int
		want          [][]string
	}{
		{"all fit", 100, 1 << 20, [][]string{{"alice", "x@example.com", "bob", "carol"}}},
		{"by count, a user's deliveries together", 3, 1 << 20, [][]string{{"alice"}, {"x@example.com", "bob"}, {"carol"}}},
		{"by count, small", 2, 1 << 20, [][]string{{"alice"}, {"x@example.com"}, {"bob"}, {"carol"}}},
		{"by bytes", 100, 3 * (deliveryOverhead + 40), [][]string{{"alice"}, {"x@example.com", "bob"}, {"carol"}}},
		{"a recipient larger than the limit goes alone", 1, 1 << 20, [][]string{{"alice"}, {"x@example.com"}, {"bob"}, {"carol"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := names(Chunk(in, targets, tc.maxDeliveries, tc.maxBytes))
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("chunks %v, want %v", got, tc.want)
			}
		})
	}
	if !Fits(targets, 8, 1<<20) || Fits(targets, 7, 1<<20) || Fits(targets, 8, 8*deliveryOverhead) {
		t.Error("Fits does not follow count and bytes")
	}
}
