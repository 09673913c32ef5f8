package dispatch

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestSettingsFrom(t *testing.T) {
	defaults := Settings{Concurrency: 10, MaxAttempts: 5, InitialBackoff: time.Second,
		MaxBackoff: 5 * time.Minute, Timeout: 10 * time.Second, BreakerFailures: 5, BreakerCoolDown: 30 * time.Second}
	zero := int32(0)
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	cases := []struct {
		name string
		spec *v1alpha1.ChannelProviderSpec
		want Settings
	}{
		{"nil spec", nil, defaults},
		{"empty spec", &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog}, defaults},
		{
			"burst defaults to perSecond",
			&v1alpha1.ChannelProviderSpec{RateLimit: &v1alpha1.RateLimit{PerSecond: 20}},
			func() Settings { s := defaults; s.PerSecond, s.Burst = 20, 20; return s }(),
		},
		{
			"everything set",
			&v1alpha1.ChannelProviderSpec{
				Concurrency: 3,
				Timeout:     dur(2 * time.Second),
				RateLimit:   &v1alpha1.RateLimit{PerSecond: 5, Burst: 50},
				Retry: &v1alpha1.RetryPolicy{MaxAttempts: 8,
					InitialBackoff: dur(200 * time.Millisecond), MaxBackoff: dur(time.Minute)},
				CircuitBreaker: &v1alpha1.CircuitBreakerPolicy{CoolDown: dur(time.Minute)},
			},
			Settings{Concurrency: 3, PerSecond: 5, Burst: 50, MaxAttempts: 8,
				InitialBackoff: 200 * time.Millisecond, MaxBackoff: time.Minute, Timeout: 2 * time.Second,
				BreakerFailures: 5, BreakerCoolDown: time.Minute},
		},
		{
			"consecutiveFailures 0 turns the breaker off",
			&v1alpha1.ChannelProviderSpec{CircuitBreaker: &v1alpha1.CircuitBreakerPolicy{ConsecutiveFailures: &zero}},
			func() Settings { s := defaults; s.BreakerFailures = -1; return s }(),
		},
		{
			"max backoff below initial is raised",
			&v1alpha1.ChannelProviderSpec{Retry: &v1alpha1.RetryPolicy{
				InitialBackoff: dur(time.Minute), MaxBackoff: dur(time.Second)}},
			func() Settings { s := defaults; s.InitialBackoff, s.MaxBackoff = time.Minute, time.Minute; return s }(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SettingsFrom(tc.spec); got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
