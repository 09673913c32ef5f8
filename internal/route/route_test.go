package route_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/route"
	"github.com/herald-dev/herald/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func TestKey(t *testing.T) {
	for _, tc := range []struct{ kind, ns, name, want string }{
		{route.KindChannelProvider, "team-a", "mail", "ChannelProvider/team-a/mail"},
		{route.KindClusterChannelProvider, "", "mail", "ClusterChannelProvider/mail"},
		// A namespace passed for a cluster-scoped kind is ignored.
		{route.KindClusterChannelProvider, "team-a", "mail", "ClusterChannelProvider/mail"},
	} {
		if got := route.Key(tc.kind, tc.ns, tc.name); got != tc.want {
			t.Errorf("Key(%q, %q, %q) = %q, want %q", tc.kind, tc.ns, tc.name, got, tc.want)
		}
	}
}

func TestAllows(t *testing.T) {
	labels := map[string]string{"team": "a", "kubernetes.io/metadata.name": "team-a"}
	for _, tc := range []struct {
		name string
		sel  *metav1.LabelSelector
		want bool
	}{
		{"nil selects none", nil, false},
		{"empty selects none", &metav1.LabelSelector{}, false},
		{"matching label", &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, true},
		{"other label", &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}, false},
		{"all namespaces, said explicitly", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpExists}}}, true},
		{"invalid selects none", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: "Bogus"}}}, false},
	} {
		if got := route.Allows(tc.sel, labels); got != tc.want {
			t.Errorf("%s: Allows = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func spec(typ v1alpha1.ProviderType, def bool) v1alpha1.ChannelProviderSpec {
	s := v1alpha1.ChannelProviderSpec{Type: typ, Default: def}
	switch typ {
	case v1alpha1.ProviderSendGrid:
		s.SecretRef = &v1alpha1.LocalObjectReference{Name: "creds"}
		s.SendGrid = &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "noreply@example.com"}}
	case v1alpha1.ProviderSMTP:
		s.SMTP = &v1alpha1.SMTPConfig{Host: "smtp.example.com", From: v1alpha1.EmailAddress{Email: "noreply@example.com"}}
	case v1alpha1.ProviderTwilio:
		s.SecretRef = &v1alpha1.LocalObjectReference{Name: "creds"}
		s.Twilio = &v1alpha1.TwilioConfig{From: "+15555550100"}
	case v1alpha1.ProviderWebhook:
		s.Webhook = &v1alpha1.WebhookConfig{URL: "https://hooks.example.com/x"}
	case v1alpha1.ProviderLog:
		s.Log = &v1alpha1.LogConfig{Channel: v1alpha1.ChannelPush}
	case v1alpha1.ProviderAPNs:
		s.SecretRef = &v1alpha1.LocalObjectReference{Name: "creds"}
		s.APNs = &v1alpha1.APNsConfig{Topic: "dev.example.app"}
	case v1alpha1.ProviderFCM:
		s.SecretRef = &v1alpha1.LocalObjectReference{Name: "creds"}
		s.FCM = &v1alpha1.FCMConfig{ProjectID: "example"}
	}
	return s
}

func withPlatforms(s v1alpha1.ChannelProviderSpec, p ...v1alpha1.Platform) v1alpha1.ChannelProviderSpec {
	s.Platforms = p
	return s
}

func ready(ok bool) []metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded, Message: "configured", LastTransitionTime: metav1.Now()}
	if !ok {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, `Secret "creds" not found`
	}
	return []metav1.Condition{c}
}

func create(t *testing.T, obj client.Object, conds []metav1.Condition) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if conds == nil {
		return
	}
	switch o := obj.(type) {
	case *v1alpha1.ChannelProvider:
		o.Status.Conditions = conds
	case *v1alpha1.ClusterChannelProvider:
		o.Status.Conditions = conds
	}
	if err := env.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

func cp(ns, name string, s v1alpha1.ChannelProviderSpec) *v1alpha1.ChannelProvider {
	return &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: s}
}

func ccp(name string, s v1alpha1.ChannelProviderSpec, allowed *metav1.LabelSelector) *v1alpha1.ClusterChannelProvider {
	return &v1alpha1.ClusterChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterChannelProviderSpec{ChannelProviderSpec: s, AllowedNamespaces: allowed}}
}

func TestProvider(t *testing.T) {
	for ns, team := range map[string]string{"team-a": "a", "team-b": "b", "team-c": "", "team-d": "", "team-e": ""} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if team != "" {
			n.Labels = map[string]string{"team": team}
		}
		create(t, n, nil)
	}
	teams := func(v ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: v}}}
	}
	everyone := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpExists}}}

	create(t, cp("team-a", "email-default", spec(v1alpha1.ProviderSendGrid, true)), ready(true))
	create(t, cp("team-a", "email-other", spec(v1alpha1.ProviderSMTP, false)), ready(true))
	create(t, cp("team-a", "sms-broken", spec(v1alpha1.ProviderTwilio, true)), ready(false))
	create(t, cp("team-a", "push-unchecked", spec(v1alpha1.ProviderLog, true)), nil)
	create(t, cp("team-b", "email-b", spec(v1alpha1.ProviderSendGrid, false)), ready(true))
	create(t, cp("team-b", "z-old", spec(v1alpha1.ProviderWebhook, true)), ready(true))
	time.Sleep(1100 * time.Millisecond) // creation times have second resolution
	create(t, cp("team-b", "a-new", spec(v1alpha1.ProviderWebhook, true)), ready(true))
	create(t, ccp("cluster-email", spec(v1alpha1.ProviderSendGrid, true), teams("a", "b")), ready(true))
	create(t, ccp("cluster-webhook", spec(v1alpha1.ProviderWebhook, true), teams("a")), ready(true))
	create(t, ccp("cluster-nobody", spec(v1alpha1.ProviderWebhook, false), nil), ready(true))
	create(t, ccp("cluster-push", spec(v1alpha1.ProviderLog, true), everyone), ready(false))

	// Push defaults per platform: an APNs default and an FCM default coexist.
	create(t, cp("team-d", "apns", spec(v1alpha1.ProviderAPNs, true)), ready(true))
	create(t, cp("team-d", "fcm", spec(v1alpha1.ProviderFCM, true)), ready(true))
	create(t, cp("team-e", "fcm-all", withPlatforms(spec(v1alpha1.ProviderFCM, true), v1alpha1.PlatformIOS, v1alpha1.PlatformAndroid)), ready(true))

	ref := func(kind, name string) *v1alpha1.ProviderReference {
		return &v1alpha1.ProviderReference{Kind: kind, Name: name}
	}
	cases := []struct {
		name     string
		ns       string
		ch       v1alpha1.Channel
		platform v1alpha1.Platform
		override *v1alpha1.ProviderReference
		wantKey  string // "" when no provider is found
		ready    bool
		msg      []string // substrings of Message when not ready
	}{
		{"namespace default", "team-a", v1alpha1.ChannelEmail, "", nil, "ChannelProvider/team-a/email-default", true, nil},
		{"override beats namespace default", "team-a", v1alpha1.ChannelEmail, "", ref("ChannelProvider", "email-other"), "ChannelProvider/team-a/email-other", true, nil},
		{"override kind defaults to ChannelProvider", "team-a", v1alpha1.ChannelEmail, "", ref("", "email-other"), "ChannelProvider/team-a/email-other", true, nil},
		{"override with an allowed cluster provider", "team-a", v1alpha1.ChannelEmail, "", ref("ClusterChannelProvider", "cluster-email"), "ClusterChannelProvider/cluster-email", true, nil},
		{"override with a cluster provider that does not allow the namespace", "team-c", v1alpha1.ChannelEmail, "", ref("ClusterChannelProvider", "cluster-email"), "ClusterChannelProvider/cluster-email", false, []string{"cluster-email", "does not allow", "team-c"}},
		{"override with a cluster provider that allows nobody", "team-a", v1alpha1.ChannelWebhook, "", ref("ClusterChannelProvider", "cluster-nobody"), "ClusterChannelProvider/cluster-nobody", false, []string{"does not allow"}},
		{"cluster default when the namespace has none", "team-b", v1alpha1.ChannelEmail, "", nil, "ClusterChannelProvider/cluster-email", true, nil},
		{"cluster default selected by labels", "team-a", v1alpha1.ChannelWebhook, "", nil, "ClusterChannelProvider/cluster-webhook", true, nil},
		{"oldest namespace default wins over name order and cluster default", "team-b", v1alpha1.ChannelWebhook, "", nil, "ChannelProvider/team-b/z-old", true, nil},
		{"no default anywhere for the namespace", "team-c", v1alpha1.ChannelEmail, "", nil, "", false, []string{"no provider", "email", "team-c"}},
		{"cluster default not selecting the namespace", "team-c", v1alpha1.ChannelWebhook, "", nil, "", false, []string{"no provider"}},
		{"namespace default not Ready", "team-a", v1alpha1.ChannelSMS, "", nil, "ChannelProvider/team-a/sms-broken", false, []string{"sms-broken", "not Ready", v1alpha1.ReasonSecretNotFound}},
		{"namespace default not yet checked", "team-a", v1alpha1.ChannelPush, "", nil, "ChannelProvider/team-a/push-unchecked", false, []string{"push-unchecked", "not been checked"}},
		{"cluster default not Ready", "team-b", v1alpha1.ChannelPush, "", nil, "ClusterChannelProvider/cluster-push", false, []string{"cluster-push", "not Ready"}},
		{"namespaced provider from another namespace", "team-b", v1alpha1.ChannelEmail, "", ref("ChannelProvider", "email-default"), "ChannelProvider/team-b/email-default", false, []string{"email-default", "not found", "team-b"}},
		{"override on another channel", "team-a", v1alpha1.ChannelSMS, "", ref("ChannelProvider", "email-default"), "ChannelProvider/team-a/email-default", false, []string{"email-default", "email", "not sms"}},
		{"override not found", "team-a", v1alpha1.ChannelEmail, "", ref("ClusterChannelProvider", "nope"), "ClusterChannelProvider/nope", false, []string{"nope", "not found"}},
		{"unknown kind", "team-a", v1alpha1.ChannelEmail, "", ref("Provider", "x"), "", false, []string{"unknown provider kind"}},
		{"ios device to the apns default", "team-d", v1alpha1.ChannelPush, v1alpha1.PlatformIOS, nil, "ChannelProvider/team-d/apns", true, nil},
		{"android device to the fcm default", "team-d", v1alpha1.ChannelPush, v1alpha1.PlatformAndroid, nil, "ChannelProvider/team-d/fcm", true, nil},
		{"web device to the fcm default", "team-d", v1alpha1.ChannelPush, v1alpha1.PlatformWeb, nil, "ChannelProvider/team-d/fcm", true, nil},
		{"fcm listing ios serves ios", "team-e", v1alpha1.ChannelPush, v1alpha1.PlatformIOS, nil, "ChannelProvider/team-e/fcm-all", true, nil},
		{"a platform no namespace default serves goes to the cluster default", "team-e", v1alpha1.ChannelPush, v1alpha1.PlatformWeb, nil, "ClusterChannelProvider/cluster-push", false, []string{"cluster-push", "not Ready"}},
		{"explicit provider that does not serve the platform", "team-d", v1alpha1.ChannelPush, v1alpha1.PlatformAndroid, ref("", "apns"), "ChannelProvider/team-d/apns", false, []string{"apns", "does not serve android", "spec.providers.android"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := route.Provider(context.Background(), env.Client, tc.ns, tc.ch, tc.platform, tc.override)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != tc.wantKey || got.Ready != tc.ready {
				t.Fatalf("got %s ready=%v (%s), want %s ready=%v", got.Key, got.Ready, got.Message, tc.wantKey, tc.ready)
			}
			if tc.ready {
				if got.Spec == nil || got.Spec.Channel() != tc.ch || got.Reason != "" || got.Name == "" {
					t.Errorf("ready choice incomplete: %+v", got)
				}
				return
			}
			if got.Reason != v1alpha1.ReasonProviderNotReady {
				t.Errorf("reason %q, want %s", got.Reason, v1alpha1.ReasonProviderNotReady)
			}
			for _, want := range tc.msg {
				if !strings.Contains(got.Message, want) {
					t.Errorf("message %q does not say %q", got.Message, want)
				}
			}
		})
	}

	t.Run("namespaces a provider change affects", func(t *testing.T) {
		var c v1alpha1.ClusterChannelProvider
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "cluster-email"}, &c); err != nil {
			t.Fatal(err)
		}
		got, err := route.Namespaces(context.Background(), env.Client, &c)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"team-a", "team-b"}) {
			t.Errorf("cluster-email affects %v, want [team-a team-b]", got)
		}
		got, _ = route.Namespaces(context.Background(), env.Client, cp("team-c", "x", spec(v1alpha1.ProviderSMTP, false)))
		if !slices.Equal(got, []string{"team-c"}) {
			t.Errorf("a ChannelProvider affects %v, want its namespace", got)
		}
	})
}

func TestPick(t *testing.T) {
	a := route.Choice{Kind: "ChannelProvider", Name: "a", Ready: true}
	b := route.Choice{Kind: "ChannelProvider", Name: "b", Ready: true}
	down := route.Choice{Kind: "ChannelProvider", Name: "down", Reason: v1alpha1.ReasonProviderNotReady, Message: "not Ready"}
	for _, tc := range []struct {
		name  string
		chain []route.Choice
		tried []string
		want  string
		ready bool
	}{
		{"the primary when nothing was tried", []route.Choice{a, b}, nil, "ChannelProvider/a", true},
		{"the next after a failure", []route.Choice{a, b}, []string{"ChannelProvider/a"}, "ChannelProvider/b", true},
		{"a Ready fallback before a primary that is not", []route.Choice{down, b}, nil, "ChannelProvider/b", true},
		{"waits for the first untried when none is Ready", []route.Choice{down, a}, []string{"ChannelProvider/a"}, "ChannelProvider/down", false},
		{"the whole chain failed", []route.Choice{a, b}, []string{"ChannelProvider/a", "ChannelProvider/b"}, "/", false},
	} {
		got := route.Pick(tc.chain, tc.tried)
		if got.Ref() != tc.want || got.Ready != tc.ready {
			t.Errorf("%s: picked %s ready=%v, want %s ready=%v", tc.name, got.Ref(), got.Ready, tc.want, tc.ready)
		}
	}
	if got := route.Pick([]route.Choice{a}, []string{"ChannelProvider/a"}); got.Reason != v1alpha1.ReasonProviderNotReady || !strings.Contains(got.Message, "every provider") {
		t.Errorf("exhausted chain: %+v", got)
	}
}
