package controller_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestTemplateReadyThenInvalidThenFixed(t *testing.T) {
	ctx := context.Background()
	tpl := &v1alpha1.Template{
		ObjectMeta: metav1.ObjectMeta{Name: "tpl-lifecycle", Namespace: "default"},
		Spec: v1alpha1.TemplateSpec{
			Category: "build",
			Channels: v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "build {{ .Params.build }} failed"}},
			Locales: map[string]v1alpha1.ChannelContent{
				"ko": {SMS: &v1alpha1.SMSContent{Text: "빌드 {{ .Params.build }} 실패"}},
			},
		},
	}
	if err := env.Client.Create(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return tpl.Status.Conditions }
	waitCondition(t, tpl, conds, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)

	// Break the Korean body on its second line.
	tpl.Spec.Locales = map[string]v1alpha1.ChannelContent{"ko": {SMS: &v1alpha1.SMSContent{Text: "빌드\n{{ .Params.build 실패"}}}
	if err := env.Client.Update(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	msg := waitCondition(t, tpl, conds, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidTemplate)
	for _, want := range []string{"sms", "ko", "line 2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	waitCondition(t, tpl, conds, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidTemplate)
	if e := waitEvent(t, tpl, v1alpha1.ReasonInvalidTemplate); e.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", e.Type)
	}

	tpl.Spec.Locales = nil
	if err := env.Client.Update(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, tpl, conds, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	if c := findCond(tpl.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		t.Errorf("Stalled still present after fix: %+v", c)
	}
}

func TestTemplateInvalidBodies(t *testing.T) {
	cases := []struct {
		name     string
		channels v1alpha1.ChannelContent
		want     []string
	}{
		{"unclosed action in email subject", v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "{{ .Params.x", Text: "ok"}}, []string{"email", "subject"}},
		{"unknown function in push body", v1alpha1.ChannelContent{Push: &v1alpha1.PushContent{Body: "{{ env \"HOME\" }}"}}, []string{"push", "body"}},
		{"bad html", v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "s", HTML: "<p>{{ end }}</p>"}}, []string{"email", "html"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tpl := &v1alpha1.Template{
				ObjectMeta: metav1.ObjectMeta{Name: "tpl-invalid-" + string(rune('a'+i)), Namespace: "default"},
				Spec:       v1alpha1.TemplateSpec{Channels: tc.channels},
			}
			if err := env.Client.Create(context.Background(), tpl); err != nil {
				t.Fatal(err)
			}
			msg := waitCondition(t, tpl, func() []metav1.Condition { return tpl.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidTemplate)
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}

func findCond(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}
