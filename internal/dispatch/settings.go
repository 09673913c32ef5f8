package dispatch

import (
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Defaults for a provider that leaves a setting out; they match the API docs.
const (
	DefaultConcurrency    = 10
	DefaultMaxAttempts    = 5
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultTimeout        = 10 * time.Second
)

// Settings shape one provider's queue. The zero value is valid: every unset
// field takes its default and there is no rate limit.
type Settings struct {
	// Concurrency is the number of sends in flight at once.
	Concurrency int
	// PerSecond is the token bucket's sustained rate; zero means unlimited.
	PerSecond float64
	// Burst is the bucket size; zero means PerSecond (at least 1).
	Burst int
	// MaxAttempts bounds attempts, the first included.
	MaxAttempts int
	// InitialBackoff is the upper bound of the (jittered) wait before the
	// second attempt; it doubles for each further attempt up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Timeout bounds one call to the provider. Senders bound their own calls
	// too; this is the backstop that keeps a hung provider from holding a
	// worker forever.
	Timeout time.Duration
	// BreakerFailures consecutive provider-level failures open the circuit
	// (see breaker); negative disables it, zero takes the default.
	BreakerFailures int
	// BreakerCoolDown is how long an open circuit waits before a probe.
	BreakerCoolDown time.Duration
}

// SettingsFrom reads a provider's spec; a nil spec gives the defaults.
func SettingsFrom(spec *v1alpha1.ChannelProviderSpec) Settings {
	var s Settings
	if spec == nil {
		return s.withDefaults()
	}
	s.Concurrency = int(spec.Concurrency)
	if spec.RateLimit != nil {
		s.PerSecond = float64(spec.RateLimit.PerSecond)
		s.Burst = int(spec.RateLimit.Burst)
	}
	if spec.Timeout != nil {
		s.Timeout = spec.Timeout.Duration
	}
	if b := spec.CircuitBreaker; b != nil {
		if b.ConsecutiveFailures != nil {
			s.BreakerFailures = int(*b.ConsecutiveFailures)
			if s.BreakerFailures == 0 {
				s.BreakerFailures = -1 // 0 in the API turns it off
			}
		}
		if b.CoolDown != nil {
			s.BreakerCoolDown = b.CoolDown.Duration
		}
	}
	if r := spec.Retry; r != nil {
		s.MaxAttempts = int(r.MaxAttempts)
		if r.InitialBackoff != nil {
			s.InitialBackoff = r.InitialBackoff.Duration
		}
		if r.MaxBackoff != nil {
			s.MaxBackoff = r.MaxBackoff.Duration
		}
	}
	return s.withDefaults()
}

// withDefaults fills unset or nonsensical fields, so a queue never runs with
// zero workers or a zero backoff whatever the caller passed.
func (s Settings) withDefaults() Settings {
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.PerSecond < 0 {
		s.PerSecond = 0
	}
	if s.PerSecond > 0 && s.Burst <= 0 {
		s.Burst = max(1, int(s.PerSecond))
	}
	if s.PerSecond == 0 {
		s.Burst = 0
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.InitialBackoff <= 0 {
		s.InitialBackoff = DefaultInitialBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	if s.MaxBackoff < s.InitialBackoff {
		s.MaxBackoff = s.InitialBackoff
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.BreakerFailures == 0 {
		s.BreakerFailures = DefaultBreakerFailures
	}
	if s.BreakerCoolDown <= 0 {
		s.BreakerCoolDown = DefaultBreakerCoolDown
	}
	return s
}

// backoff is the wait before the attempt after attempt number n (1-based):
// full jitter over [0, min(max, initial·2^(n-1))], so retries from many jobs
// that failed together (a provider outage) spread out instead of returning
// in a wave.
func (s Settings) backoff(n int, jitter func(time.Duration) time.Duration) time.Duration {
	ceiling := s.InitialBackoff
	for i := 1; i < n && ceiling < s.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, s.MaxBackoff)
	return jitter(ceiling)
}
