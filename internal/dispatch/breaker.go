package dispatch

import (
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Circuit is a provider's circuit breaker state.
type Circuit string

const (
	// CircuitClosed: the provider is called.
	CircuitClosed Circuit = "Closed"
	// CircuitOpen: after consecutive provider-level failures the provider
	// is not called until the cool-down ends; jobs that another provider
	// can take fail over at once (ReasonCircuitOpen), the rest wait.
	CircuitOpen Circuit = "Open"
	// CircuitHalfOpen: the cool-down ended and one job probes the provider;
	// its success closes the circuit, its failure opens it again.
	CircuitHalfOpen Circuit = "HalfOpen"
)

// Breaker defaults, as the API documents them.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCoolDown = 30 * time.Second
)

// breaker decides whether a provider is called. It is a pure state
// machine: the queue feeds it attempt results and asks it before each
// attempt, under the queue's lock.
type breaker struct {
	failures int           // consecutive provider-level failures to open
	coolDown time.Duration // how long it stays open before a probe

	state   Circuit
	count   int       // consecutive provider-level failures so far
	until   time.Time // when an open circuit may probe
	probing bool      // a half-open probe is in flight
	lastErr string    // the failure that opened it
}

// allow reports whether an attempt may call the provider now; probe is
// true for the one attempt a half-open circuit lets through. When not
// allowed, retryAt is when to ask again.
func (b *breaker) allow(now time.Time) (ok, probe bool, retryAt time.Time) {
	switch b.state {
	case CircuitOpen:
		if now.Before(b.until) {
			return false, false, b.until
		}
		b.state = CircuitHalfOpen
		fallthrough
	case CircuitHalfOpen:
		if b.probing {
			return false, false, now.Add(b.coolDown)
		}
		b.probing = true
		return true, true, time.Time{}
	}
	return true, false, time.Time{}
}

// record takes an attempt's result (err nil for success) and reports
// whether the circuit changed state. Only provider-level failures count
// (see trips); an address-level refusal proves the provider is up.
func (b *breaker) record(now time.Time, probe bool, err *senders.Error) bool {
	was := b.state
	if probe {
		b.probing = false
	}
	switch {
	case err == nil || !trips(err.Reason):
		b.state, b.count, b.lastErr = CircuitClosed, 0, ""
	case b.state == CircuitHalfOpen && probe:
		b.state, b.until, b.lastErr = CircuitOpen, now.Add(b.coolDown), err.Error()
	case b.state == CircuitClosed:
		b.count++
		if b.failures > 0 && b.count >= b.failures {
			b.state, b.until, b.lastErr = CircuitOpen, now.Add(b.coolDown), err.Error()
		}
	}
	return b.state != was
}

// trips reports whether a failure counts against the provider: it is down,
// slow, unreachable or refusing Herald's credentials. Throttling (429) does
// not: the provider is up and says when to come back.
func trips(reason string) bool {
	switch reason {
	case v1alpha1.ReasonUnavailable, v1alpha1.ReasonTimeout, v1alpha1.ReasonNetwork, v1alpha1.ReasonAuthFailed:
		return true
	}
	return false
}
