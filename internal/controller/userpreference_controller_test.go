package controller_test

import (
	"context"
	corev1 "k8s.io/api/core/v1"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
)

func TestUserPreferenceValidation(t *testing.T) {
	cases := []struct {
		name   string
		spec   v1alpha1.UserPreferenceSpec
		ready  metav1.ConditionStatus
		reason string
		field  string
	}{
		{"valid", v1alpha1.UserPreferenceSpec{Email: "a@example.com", Locale: "pt-BR", TimeZone: "Europe/Berlin"}, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, ""},
		{"unknown time zone", v1alpha1.UserPreferenceSpec{TimeZone: "Mars/Olympus_Mons"}, metav1.ConditionFalse, v1alpha1.ReasonInvalidTimeZone, "spec.timeZone"},
		{"locale that does not parse", v1alpha1.UserPreferenceSpec{Locale: "en-US-x"}, metav1.ConditionFalse, v1alpha1.ReasonInvalidLocale, "spec.locale"},
	}
	prefs := make([]*v1alpha1.UserPreference, len(cases))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: "upref-validation-" + string(rune('a'+i)), Namespace: "default"}, Spec: tc.spec}
			if err := env.Client.Create(context.Background(), u); err != nil {
				t.Fatal(err)
			}
			msg := waitCondition(t, u, func() []metav1.Condition { return u.Status.Conditions }, v1alpha1.ConditionReady, tc.ready, tc.reason)
			if tc.field != "" && !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not name %s", msg, tc.field)
			}
			prefs[i] = u
		})
	}
	// An invalid one records a Warning; a valid one, made before them,
	// records nothing (one Event per user would be an API write per user).
	for i, tc := range cases {
		if prefs[i] == nil {
			continue
		}
		if tc.ready == metav1.ConditionFalse {
			if e := waitEvent(t, prefs[i], tc.reason); e.Type != corev1.EventTypeWarning {
				t.Errorf("%s: event type %s, want Warning", tc.name, e.Type)
			}
		}
	}
	for i, tc := range cases {
		if prefs[i] != nil && tc.ready == metav1.ConditionTrue {
			if evs := events(t, prefs[i]); len(evs) != 0 {
				t.Errorf("%s: a UserPreference valid from the start recorded %d Events (%s), want none", tc.name, len(evs), evs[0].Reason)
			}
		}
	}
}

// A device the push service declared dead stays dead until its token
// changes in spec; an unsubscribed phone until the phone changes.
func TestUserPreferenceForgetsChangedAddresses(t *testing.T) {
	ctx := context.Background()
	u := &v1alpha1.UserPreference{
		ObjectMeta: metav1.ObjectMeta{Name: "upref-learned", Namespace: "default"},
		Spec: v1alpha1.UserPreferenceSpec{
			Phone: "+14155550100",
			Devices: []v1alpha1.Device{
				{Platform: v1alpha1.PlatformIOS, Token: "old-token"},
				{Platform: v1alpha1.PlatformAndroid, Token: "android-token"},
			},
		},
	}
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, u, func() []metav1.Condition { return u.Status.Conditions }, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	u.Status.DeadDevices = []v1alpha1.DeadDevice{
		{TokenHash: policy.HashToken("old-token"), Reason: v1alpha1.ReasonDeviceUnregistered, Time: now},
		{TokenHash: policy.HashToken("android-token"), Reason: v1alpha1.ReasonDeviceUnregistered, Time: now},
	}
	u.Status.Unsubscribed = []v1alpha1.UnsubscribedAddress{{Channel: v1alpha1.ChannelSMS, AddressHash: policy.HashToken("+14155550100"), Reason: v1alpha1.ReasonUnsubscribed, Time: now}}
	if err := env.Client.Status().Update(ctx, u); err != nil {
		t.Fatal(err)
	}

	// The iOS app was reinstalled (new token) and the user has a new phone.
	u.Spec.Devices[0].Token = "new-token"
	u.Spec.Phone = "+14155550199"
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := env.Client.Get(ctx, key("default", u.Name), u); err != nil {
			return err
		}
		if len(u.Status.DeadDevices) != 1 || u.Status.DeadDevices[0].TokenHash != policy.HashToken("android-token") {
			return errf("dead devices %+v, want only the android one", u.Status.DeadDevices)
		}
		if len(u.Status.Unsubscribed) != 0 {
			return errf("unsubscribed %+v, want none after the phone changed", u.Status.Unsubscribed)
		}
		return nil
	})
}
