// Package fake holds loopback servers that speak each provider's wire protocol
// closely enough that the real SDKs cannot tell: tests, `make dev` and the
// benchmarks send through them. This package has what every fake shares: a
// programmable Script of answers, a Log of what was received, the loopback
// HTTP server and the way a Fault is carried out over HTTP, and a test CA.
// Each provider's server lives in its own sub-package.
package fake

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Fault is one programmed answer. The zero Fault is success.
type Fault struct {
	// Status is the HTTP status (or SMTP reply code) to answer with.
	Status int
	// Reason is the provider's error reason or code (APNs reason, FCM
	// errorCode, Twilio error number, SMTP enhanced text).
	Reason string
	// RetryAfter, when set, is sent as a Retry-After header.
	RetryAfter time.Duration
	// Latency delays the answer.
	Latency time.Duration
	// Drop closes the connection without answering.
	Drop bool
	// Body, when set, is the answer's whole body, sent as text/html instead
	// of the provider's error format: what a proxy or load balancer in
	// front of the provider answers (see HTMLError). Status defaults as for
	// any other fault.
	Body string
}

// OK reports whether the fault is a success.
func (f Fault) OK() bool { return f.Status == 0 && f.Reason == "" && !f.Drop && f.Body == "" }

// Rate is a fault answered to a random share P (0..1) of requests.
type Rate struct {
	P     float64
	Fault Fault
}

// Script decides the answer to each request: queued faults first, in order,
// then the random rates, else success after the base Latency.
type Script struct {
	mu      sync.Mutex
	queue   []Fault
	rates   []Rate
	latency time.Duration
	rng     *rand.Rand
}

// NewScript returns a Script whose random choices follow seed.
func NewScript(seed uint64) *Script {
	return &Script{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Push queues faults for the next requests.
func (s *Script) Push(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, f...)
}

// SetRates replaces the random faults.
func (s *Script) SetRates(r ...Rate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates = r
}

// SetLatency sets the latency of every answer that has none of its own.
func (s *Script) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Next returns the answer for the next request.
func (s *Script) Next() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f Fault
	if len(s.queue) > 0 {
		f = s.queue[0]
		s.queue = s.queue[1:]
	} else if len(s.rates) > 0 {
		x := s.rng.Float64()
		for _, r := range s.rates {
			if x < r.P {
				f = r.Fault
				break
			}
			x -= r.P
		}
	}
	if f.Latency == 0 {
		f.Latency = s.latency
	}
	return f
}

// Log records what a fake received, safe for concurrent use.
type Log[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add records one item.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, v)
}

// All returns a copy of everything recorded.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

// Len returns how many items were recorded.
func (l *Log[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// Reset forgets everything recorded.
func (l *Log[T]) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = nil
}
