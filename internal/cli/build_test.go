package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		phase   v1alpha1.NotificationPhase
		partial bool
		want    int
	}{
		{v1alpha1.PhaseSent, false, ExitOK},
		{v1alpha1.PhaseSuppressed, false, ExitOK},
		{v1alpha1.PhaseFailed, false, ExitFailed},
		{v1alpha1.PhaseFailed, true, ExitFailed},
		{v1alpha1.PhaseExpired, false, ExitFailed},
		{v1alpha1.PhasePartiallySent, false, ExitFailed},
		{v1alpha1.PhasePartiallySent, true, ExitOK},
	} {
		if got := Outcome(tc.phase, tc.partial); got != tc.want {
			t.Errorf("Outcome(%s, partial=%v) = %d, want %d", tc.phase, tc.partial, got, tc.want)
		}
	}
}

func TestCIKey(t *testing.T) {
	spec := &v1alpha1.NotificationSpec{TemplateRef: &v1alpha1.LocalObjectReference{Name: "build-failed"}}
	other := &v1alpha1.NotificationSpec{TemplateRef: &v1alpha1.LocalObjectReference{Name: "deployed"}}
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	if k := CIKey(env(), spec); k != "" {
		t.Errorf("outside CI: key %q, want none", k)
	}
	gh := CIKey(env("GITHUB_RUN_ID", "123"), spec)
	if !strings.HasPrefix(gh, "github-123-") {
		t.Errorf("GitHub key %q", gh)
	}
	if again := CIKey(env("GITHUB_RUN_ID", "123", "GITHUB_RUN_ATTEMPT", "2"), spec); again != gh {
		t.Errorf("a re-run attempt changed the key: %q vs %q", again, gh)
	}
	if CIKey(env("GITHUB_RUN_ID", "123"), other) == gh {
		t.Error("two different messages in one run share a key")
	}
	if CIKey(env("GITHUB_RUN_ID", "124"), spec) == gh {
		t.Error("two runs share a key")
	}
	keyed := *spec
	keyed.IdempotencyKey = "x"
	if CIKey(env("GITHUB_RUN_ID", "123"), &keyed) != gh {
		t.Error("the spec's own key changed the digest")
	}
	for _, tc := range []struct{ env, value, prefix string }{
		{"HERALD_RUN_ID", "nightly-run-7", "herald-nightly-run-7-"},
		{"CI_PIPELINE_ID", "55", "gitlab-55-"},
		{"BUILDKITE_BUILD_ID", "0190-ab", "buildkite-0190-ab-"},
		{"BUILD_TAG", "jenkins-Folder/Job-12", "jenkins-jenkins-folder-job-12-"},
	} {
		if k := CIKey(env(tc.env, tc.value), spec); !strings.HasPrefix(k, tc.prefix) || len(k) > 253 {
			t.Errorf("%s=%s: key %q, want prefix %q", tc.env, tc.value, k, tc.prefix)
		}
	}
	if k := CIKey(env("HERALD_RUN_ID", strings.Repeat("r", 400)), spec); len(k) > 253 {
		t.Errorf("key of %d characters, the API allows 253", len(k))
	}
}

func TestParseRecipient(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want v1alpha1.Recipient
		err  string
	}{
		{in: "user:alice", want: v1alpha1.Recipient{User: "alice"}},
		{in: "alice", want: v1alpha1.Recipient{User: "alice"}},
		{in: "email:a@example.com", want: v1alpha1.Recipient{Email: "a@example.com"}},
		{in: "a@example.com", want: v1alpha1.Recipient{Email: "a@example.com"}},
		{in: "phone:+14155550100", want: v1alpha1.Recipient{Phone: "+14155550100"}},
		{in: "+14155550100", want: v1alpha1.Recipient{Phone: "+14155550100"}},
		{in: "webhook:team-chat", want: v1alpha1.Recipient{Webhook: "team-chat"}},
		{in: "device:ios:abc:def", want: v1alpha1.Recipient{Device: &v1alpha1.DeviceTarget{Platform: "ios", Token: "abc:def"}}},
		{in: "device:ios", err: "device:PLATFORM:TOKEN"},
		{in: "user:", err: "empty user"},
		{in: "fax:123", err: `unknown kind "fax"`},
	} {
		got, err := parseRecipient(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || ExitCode(err) != ExitInvalid {
				t.Errorf("%q: error %v (exit %d), want one with %q and exit 2", tc.in, err, ExitCode(err), tc.err)
			}
			continue
		}
		if err != nil || got.User != tc.want.User || got.Email != tc.want.Email || got.Phone != tc.want.Phone || got.Webhook != tc.want.Webhook ||
			(got.Device == nil) != (tc.want.Device == nil) || (got.Device != nil && *got.Device != *tc.want.Device) {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestMessageNotification(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	noEnv := func(string) string { return "" }
	m := &message{template: "build-failed", params: []string{"build=12", "url=u"}, to: []string{"user:ana,email:b@example.com"},
		channels: []string{"email,sms"}, priority: "high", sendAt: "+10m", expiresAfter: "1h"}
	n, err := m.notification("ci", now, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := n.Spec
	if n.GenerateName != "build-failed-" || n.Namespace != "ci" || s.TemplateRef.Name != "build-failed" || len(s.Recipients) != 2 ||
		len(s.Channels) != 2 || s.Priority != "high" || !s.SendAt.Time.Equal(now.Add(10*time.Minute)) || s.ExpiresAfter.Duration != time.Hour ||
		string(s.Params.Raw) != `{"build":"12","url":"u"}` || s.IdempotencyKey != "" {
		t.Errorf("built %+v", n)
	}
	for _, tc := range []struct {
		m   message
		err string
	}{
		{message{to: []string{"ana"}}, "nothing to send"},
		{message{template: "t", sms: "x", to: []string{"ana"}}, "exclude each other"},
		{message{sms: "x"}, "no recipients"},
		{message{sms: "x", selector: "a in (", to: nil}, "--selector"},
		{message{sms: "x", to: []string{"ana"}, params: []string{"novalue"}}, "--param"},
		{message{sms: "x", to: []string{"ana"}, sendAt: "tomorrow"}, "--send-at"},
		{message{sms: "x", to: []string{"ana"}, expiresAfter: "1 day"}, "--expires-after"},
		{message{sms: "x", to: []string{"ana"}, paramsFile: "/does/not/exist"}, "--params-file"},
	} {
		_, err := tc.m.notification("ci", now, noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.err) || ExitCode(err) != ExitInvalid {
			t.Errorf("%+v: error %v, want exit 2 naming %s", tc.m, err, tc.err)
		}
	}
	// The params file and --param merge, the flag winning.
	pm := &message{sms: "x", to: []string{"ana"}, paramsFile: "-", stdin: strings.NewReader(`{"build": 7, "keep": true}`), params: []string{"build=8"}}
	n, err = pm.notification("ci", now, noEnv)
	if err != nil || string(n.Spec.Params.Raw) != `{"build":"8","keep":true}` {
		t.Errorf("params %s, %v", n.Spec.Params.Raw, err)
	}
	// In CI the key defaults from the run id; --idempotency-key="" turns it off.
	ci := func(k string) string { return map[string]string{"CI_PIPELINE_ID": "9"}[k] }
	if n, _ := (&message{sms: "x", to: []string{"ana"}}).notification("ci", now, ci); !strings.HasPrefix(n.Spec.IdempotencyKey, "gitlab-9-") {
		t.Errorf("key %q in GitLab CI", n.Spec.IdempotencyKey)
	}
	if n, _ := (&message{sms: "x", to: []string{"ana"}, keySet: true}).notification("ci", now, ci); n.Spec.IdempotencyKey != "" {
		t.Errorf("--idempotency-key= left key %q", n.Spec.IdempotencyKey)
	}
}

func TestDeliveryLine(t *testing.T) {
	d := v1alpha1.Delivery{Recipient: "ana", Address: "a***@example.com", Channel: "email", Provider: "ChannelProvider/sendgrid",
		State: v1alpha1.DeliveryFailed, Attempts: 3, Reason: "ProviderError", Message: "HTTP 400"}
	got := deliveryLine(d)
	for _, want := range []string{"email", "ana (a***@example.com)", "ChannelProvider/sendgrid", "Failed", "attempts=3", "ProviderError: HTTP 400"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
}
