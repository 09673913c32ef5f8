package dispatch

import (
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

func TestBreaker(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	down := senders.Transient(v1alpha1.ReasonUnavailable, "503", "HTTP 503")
	throttled := senders.Transient(v1alpha1.ReasonRateLimited, "429", "HTTP 429")
	badAddress := senders.Permanent(v1alpha1.ReasonInvalidAddress, "21211", "invalid number")
	b := &breaker{failures: 3, coolDown: 10 * time.Second, state: CircuitClosed}

	step := func(name string, at time.Duration, err *senders.Error, wantState Circuit, wantChanged bool) {
		t.Helper()
		ok, probe, _ := b.allow(t0.Add(at))
		if !ok {
			t.Fatalf("%s: not allowed in state %s", name, b.state)
		}
		if changed := b.record(t0.Add(at), probe, err); changed != wantChanged || b.state != wantState {
			t.Fatalf("%s: state %s (changed %v), want %s (changed %v)", name, b.state, changed, wantState, wantChanged)
		}
	}
	step("first 503", 0, down, CircuitClosed, false)
	step("a 429 does not count", time.Second, throttled, CircuitClosed, false)
	step("an address error proves the provider up: the count restarts", 2*time.Second, badAddress, CircuitClosed, false)
	step("503", 3*time.Second, down, CircuitClosed, false)
	step("503", 4*time.Second, down, CircuitClosed, false)
	step("third 503 in a row opens", 5*time.Second, down, CircuitOpen, true)
	if b.lastErr == "" {
		t.Error("an open circuit keeps the error that opened it")
	}
	if ok, _, retryAt := b.allow(t0.Add(9 * time.Second)); ok || !retryAt.Equal(t0.Add(15*time.Second)) {
		t.Errorf("during the cool-down: allowed %v, retry at %s; want refused until +15s", ok, retryAt.Sub(t0))
	}
	// After the cool-down one probe goes; a second attempt waits for it.
	ok, probe, _ := b.allow(t0.Add(15 * time.Second))
	if !ok || !probe || b.state != CircuitHalfOpen {
		t.Fatalf("after the cool-down: allowed %v probe %v state %s", ok, probe, b.state)
	}
	if ok, _, _ := b.allow(t0.Add(15 * time.Second)); ok {
		t.Error("a second attempt went while the probe was in flight")
	}
	if changed := b.record(t0.Add(16*time.Second), true, down); !changed || b.state != CircuitOpen || !b.until.Equal(t0.Add(26*time.Second)) {
		t.Fatalf("failed probe: state %s until %s", b.state, b.until.Sub(t0))
	}
	ok, probe, _ = b.allow(t0.Add(26 * time.Second))
	if !ok || !probe {
		t.Fatal("no probe after the second cool-down")
	}
	if changed := b.record(t0.Add(27*time.Second), true, nil); !changed || b.state != CircuitClosed || b.count != 0 {
		t.Fatalf("successful probe: state %s count %d", b.state, b.count)
	}
	// Disabled (failures 0): never opens.
	off := &breaker{state: CircuitClosed}
	for range 100 {
		off.record(t0, false, down)
	}
	if off.state != CircuitClosed {
		t.Error("a breaker with failures 0 opened")
	}
}

// A queue whose provider failed twice in a row stops calling it: a job
// another provider can take fails over at once (CircuitOpen), one that
// cannot waits for the probe after the cool-down, and the probe's success
// closes the circuit. OnCircuit hears each change.
func TestQueueCircuit(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var changes []Circuit
	d, rec := newTestDispatcher(t, Options{Clock: clk, OnCircuit: func(key string, c Circuit) {
		mu.Lock()
		changes = append(changes, c)
		mu.Unlock()
	}})
	down := senders.Permanent(senders.ReasonAuthFailed, "401", "credentials refused")
	s := &testSender{clk: clk, script: []error{down, down}}
	d.Ensure("p", Settings{MaxAttempts: 1, BreakerFailures: 2, BreakerCoolDown: 10 * time.Second}, s)
	mustSubmit(t, d, "p", newJob("a"))
	mustSubmit(t, d, "p", newJob("b"))
	rec.ended(t, 2)
	if c, lastErr := d.Circuit("p"); c != CircuitOpen || !strings.Contains(lastErr, "credentials refused") {
		t.Fatalf("circuit %s (%q), want Open with the error", c, lastErr)
	}

	over := newJob("over")
	over.FailOver = true
	mustSubmit(t, d, "p", over)
	if o := rec.next(t); o.State != Failed || o.Err == nil || o.Err.Reason != v1alpha1.ReasonCircuitOpen || o.Attempted {
		t.Fatalf("fail-over job: %+v, want Failed CircuitOpen without an attempt", o)
	}
	late := newJob("late")
	late.Deadline = clk.Now().Add(5 * time.Second) // before the cool-down ends
	mustSubmit(t, d, "p", late)
	if o := rec.next(t); o.JobID != "late" || o.State != Expired || o.Attempted {
		t.Fatalf("a job whose deadline comes first: %+v, want Expired at once", o)
	}
	mustSubmit(t, d, "p", newJob("waits"))
	rec.none(t)
	if n := s.callCount(); n != 2 {
		t.Fatalf("the provider was called %d times while open, want 2 (before it opened)", n)
	}
	clk.Step(10 * time.Second) // the cool-down ends: "waits" probes, and succeeds
	if o := rec.next(t); o.JobID != "waits" || o.State != Sent || o.Attempt != 1 {
		t.Fatalf("after the cool-down: %+v, want the waiting job Sent on its first attempt", o)
	}
	if c, _ := d.Circuit("p"); c != CircuitClosed {
		t.Errorf("circuit %s after a successful probe, want Closed", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0] != CircuitOpen || changes[1] != CircuitClosed {
		t.Errorf("OnCircuit heard %v, want [Open Closed]", changes)
	}
}
