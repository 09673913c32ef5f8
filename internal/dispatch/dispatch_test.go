package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// waitLimit bounds every wait for something that should happen; it is only
// reached when a test is failing, so it can be generous.
const waitLimit = 10 * time.Second

// testSender answers from a script, then with success, and records what it
// was asked. It stands in for the real senders, which are written elsewhere.
type testSender struct {
	clk clock.PassiveClock
	// hold, when set, runs before answering: a gate, a hang, a delay.
	hold func(ctx context.Context) error

	mu     sync.Mutex
	script []error
	calls  []sendCall

	inFlight, peak atomic.Int32
}

type sendCall struct {
	id   string
	at   time.Time
	ctxE error // the context's error after hold, if it ended
}

func (s *testSender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	at := time.Now()
	if s.clk != nil {
		at = s.clk.Now()
	}
	var err error
	if s.hold != nil {
		err = s.hold(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, sendCall{id: msg.ID, at: at, ctxE: ctx.Err()})
	if err != nil {
		return senders.Result{}, err
	}
	if len(s.script) > 0 {
		err, s.script = s.script[0], s.script[1:]
		if err != nil {
			return senders.Result{}, err
		}
	}
	return senders.Result{ProviderMessageID: "pm-" + msg.ID}, nil
}

func (s *testSender) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *testSender) callsCopy() []sendCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sendCall(nil), s.calls...)
}

// hangUntilCancelled is a provider that never answers.
func hangUntilCancelled(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// recorder is a Reporter that buffers, as the controller's will.
type recorder struct {
	ch chan Outcome
}

func newRecorder() *recorder { return &recorder{ch: make(chan Outcome, 4096)} }

func (r *recorder) report(o Outcome) { r.ch <- o }

// next returns the next outcome, failing the test if none comes.
func (r *recorder) next(t *testing.T) Outcome {
	t.Helper()
	select {
	case o := <-r.ch:
		return o
	case <-time.After(waitLimit):
		t.Fatal("no outcome reported")
		return Outcome{}
	}
}

// terminal collects outcomes until n jobs have ended, keyed by job ID.
func (r *recorder) terminal(t *testing.T, n int) map[string]Outcome {
	t.Helper()
	got := map[string]Outcome{}
	for len(got) < n {
		o := r.next(t)
		if o.State.Terminal() {
			if _, dup := got[o.JobID]; dup {
				t.Fatalf("job %s ended twice", o.JobID)
			}
			got[o.JobID] = o
		}
	}
	return got
}

// ended collects the next n outcomes as job ID → state.
func (r *recorder) ended(t *testing.T, n int) map[string]State {
	t.Helper()
	got := map[string]State{}
	for range n {
		o := r.next(t)
		got[o.JobID] = o.State
	}
	return got
}

// none asserts that nothing is reported for a short while. A short wait only
// makes the check weaker on a slow machine, never wrong.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case o := <-r.ch:
		t.Fatalf("unexpected outcome %+v", o)
	case <-time.After(30 * time.Millisecond):
	}
}

func newTestDispatcher(t *testing.T, opts Options) (*Dispatcher, *recorder) {
	t.Helper()
	rec := newRecorder()
	opts.Reporter = rec.report
	d := New(opts)
	t.Cleanup(d.Stop)
	return d, rec
}

func newJob(id string) Job {
	return Job{ID: id, To: senders.Address{Email: id + "@example.com"},
		Msg: &senders.Message{ID: id, Notification: senders.NotificationRef{Namespace: "ns", Name: "n"}}}
}

func mustSubmit(t *testing.T, d *Dispatcher, key string, j Job) {
	t.Helper()
	if err := d.Submit(key, j); err != nil {
		t.Fatalf("Submit(%s): %v", j.ID, err)
	}
}

func noJitter(d time.Duration) time.Duration  { return 0 }
func maxJitter(d time.Duration) time.Duration { return d }

func TestOutcomes(t *testing.T) {
	transient := func(reason string) error { return senders.Transient(reason, "", "") }
	cases := []struct {
		name        string
		settings    Settings
		resumed     int // Job.Attempts
		script      []error
		wantStates  []State
		wantAttempt int // of the last outcome
		wantReason  string
		wantCalls   int
	}{
		{
			name:       "sent first try",
			wantStates: []State{Sent}, wantAttempt: 1, wantCalls: 1,
		},
		{
			name:       "transient then sent",
			script:     []error{transient(senders.ReasonUnavailable), transient(senders.ReasonNetwork)},
			wantStates: []State{Retrying, Retrying, Sent}, wantAttempt: 3, wantCalls: 3,
		},
		{
			name:       "resumed count after restart",
			resumed:    2,
			script:     []error{transient(senders.ReasonUnavailable)},
			wantStates: []State{Retrying, Sent}, wantAttempt: 4, wantCalls: 2,
		},
		{
			name:       "permanent not retried",
			script:     []error{senders.Permanent(senders.ReasonInvalidAddress, "21211", "")},
			wantStates: []State{Failed}, wantAttempt: 1, wantReason: senders.ReasonInvalidAddress, wantCalls: 1,
		},
		{
			name:     "attempts exhausted fails with the last reason",
			settings: Settings{MaxAttempts: 3},
			script: []error{transient(senders.ReasonUnavailable), transient(senders.ReasonUnavailable),
				transient(senders.ReasonRateLimited), nil},
			wantStates: []State{Retrying, Retrying, Failed}, wantAttempt: 3, wantReason: senders.ReasonRateLimited, wantCalls: 3,
		},
		{
			name:       "unclassified error is retried as a network error",
			settings:   Settings{MaxAttempts: 1},
			script:     []error{errors.New("connection reset")},
			wantStates: []State{Failed}, wantAttempt: 1, wantReason: senders.ReasonNetwork, wantCalls: 1,
		},
		{
			name:       "no attempts left after restart",
			settings:   Settings{MaxAttempts: 2},
			resumed:    2,
			wantStates: []State{Failed}, wantAttempt: 2, wantReason: "TransientError", wantCalls: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, rec := newTestDispatcher(t, Options{})
			d.jitter = noJitter
			s := &testSender{script: tc.script}
			d.Ensure("p", tc.settings, s)
			j := newJob("a")
			j.Attempts = tc.resumed
			mustSubmit(t, d, "p", j)

			var last Outcome
			for i, want := range tc.wantStates {
				last = rec.next(t)
				if last.State != want {
					t.Fatalf("outcome %d: state %v, want %v (err %v)", i, last.State, want, last.Err)
				}
				if last.JobID != "a" || last.Key != "p" || last.Notification.Name != "n" {
					t.Errorf("outcome %d names %q/%q/%q", i, last.Key, last.JobID, last.Notification.Name)
				}
				if want == Retrying && (last.Err == nil || last.NextAttempt.Before(last.End)) {
					t.Errorf("outcome %d: Retrying needs an error and a next attempt: %+v", i, last)
				}
			}
			if last.Attempt != tc.wantAttempt {
				t.Errorf("attempt %d, want %d", last.Attempt, tc.wantAttempt)
			}
			if last.Attempted != (tc.wantCalls > 0) {
				t.Errorf("attempted %v with %d calls", last.Attempted, tc.wantCalls)
			}
			switch {
			case tc.wantReason == "" && last.Err != nil:
				t.Errorf("unexpected error %v", last.Err)
			case tc.wantReason != "" && (last.Err == nil || last.Err.Reason != tc.wantReason):
				t.Errorf("error %v, want reason %s", last.Err, tc.wantReason)
			}
			if last.State == Sent && last.Result.ProviderMessageID != "pm-a" {
				t.Errorf("result %+v", last.Result)
			}
			rec.none(t)
			if n := s.callCount(); n != tc.wantCalls {
				t.Errorf("%d calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestBackoffOnClock(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d, rec := newTestDispatcher(t, Options{Clock: clk})
	d.jitter = maxJitter // the ceiling, so the waits are exact
	s := &testSender{clk: clk, script: []error{
		senders.Transient(senders.ReasonUnavailable, "", ""),
		senders.Transient(senders.ReasonUnavailable, "", ""),
		senders.Transient(senders.ReasonUnavailable, "", ""),
	}}
	d.Ensure("p", Settings{InitialBackoff: 10 * time.Second, MaxBackoff: 30 * time.Second}, s)
	mustSubmit(t, d, "p", newJob("a"))

	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second} {
		o := rec.next(t)
		if o.State != Retrying || o.NextAttempt.Sub(o.End) != want {
			t.Fatalf("retry %d: %v after %v, want Retrying after %v", i+1, o.State, o.NextAttempt.Sub(o.End), want)
		}
		clk.Step(want - time.Second)
		rec.none(t)
		if n := s.callCount(); n != i+1 {
			t.Fatalf("attempt made %v early", time.Second)
		}
		clk.Step(time.Second)
	}
	if o := rec.next(t); o.State != Sent || o.Attempt != 4 {
		t.Fatalf("got %v attempt %d, want Sent attempt 4", o.State, o.Attempt)
	}
}

func TestBackoffCeiling(t *testing.T) {
	s := Settings{InitialBackoff: time.Second, MaxBackoff: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 60: 5 * time.Second} {
		if got := s.backoff(n, maxJitter); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
	for range 100 {
		if got := s.backoff(3, fullJitter); got < 0 || got > 4*time.Second {
			t.Fatalf("jittered backoff %v out of [0, 4s]", got)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d, rec := newTestDispatcher(t, Options{Clock: clk})
	d.jitter = maxJitter
	limited := senders.Transient(senders.ReasonRateLimited, "", "")
	limited.RetryAfter = 30 * time.Second
	s := &testSender{clk: clk, script: []error{limited}}
	d.Ensure("p", Settings{InitialBackoff: time.Millisecond}, s)
	mustSubmit(t, d, "p", newJob("a"))

	o := rec.next(t)
	if o.State != Retrying || o.NextAttempt.Sub(o.End) != 30*time.Second {
		t.Fatalf("got %v next in %v, want Retrying in 30s", o.State, o.NextAttempt.Sub(o.End))
	}
	clk.Step(29 * time.Second)
	rec.none(t)
	clk.Step(time.Second)
	if o := rec.next(t); o.State != Sent {
		t.Fatalf("got %v, want Sent", o.State)
	}
	calls := s.callsCopy()
	if gap := calls[1].at.Sub(calls[0].at); gap < limited.RetryAfter {
		t.Fatalf("attempts %v apart, want at least Retry-After %v", gap, limited.RetryAfter)
	}
}

func TestDeadline(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := clk.Now()
	d, rec := newTestDispatcher(t, Options{Clock: clk})
	d.jitter = maxJitter
	s := &testSender{clk: clk, script: []error{senders.Transient(senders.ReasonUnavailable, "", "")}}
	d.Ensure("p", Settings{InitialBackoff: time.Minute}, s)

	past := newJob("past")
	past.Deadline = now
	mustSubmit(t, d, "p", past)
	o := rec.next(t)
	if o.State != Expired || o.Attempted || o.Err != nil {
		t.Fatalf("past deadline: %+v, want Expired without an attempt", o)
	}

	// The retry would come after the deadline: expire now, with the reason.
	soon := newJob("soon")
	soon.Deadline = now.Add(30 * time.Second)
	mustSubmit(t, d, "p", soon)
	o = rec.next(t)
	if o.State != Expired || !o.Attempted || o.Err == nil || o.Err.Reason != senders.ReasonUnavailable {
		t.Fatalf("retry past deadline: %+v, want Expired after the attempt with its error", o)
	}

	// Held until after its deadline (NotBefore from status after a restart).
	late := newJob("late")
	late.NotBefore = now.Add(2 * time.Minute)
	late.Deadline = now.Add(time.Minute)
	mustSubmit(t, d, "p", late)
	rec.none(t)
	clk.Step(2 * time.Minute)
	if o := rec.next(t); o.State != Expired || o.Attempted {
		t.Fatalf("late: %+v, want Expired without an attempt", o)
	}
	if n := s.callCount(); n != 1 {
		t.Fatalf("%d sends, want 1 (only the job that had time)", n)
	}
}

func TestRateLimit(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	s := &testSender{}
	const perSecond, n = 50, 11
	d.Ensure("rl", Settings{PerSecond: perSecond, Burst: 1}, s)
	start := time.Now()
	for i := range n {
		mustSubmit(t, d, "rl", newJob(fmt.Sprint(i)))
	}
	rec.terminal(t, n)
	// One token at once, then one per 1/perSecond. Lower bound only: a
	// loaded machine makes it slower, never faster.
	if took, want := time.Since(start), (n-1)*time.Second/perSecond; took < want {
		t.Fatalf("%d sends at %d/s took %v, want at least %v", n, perSecond, took, want)
	}
	if c := testutil.CollectAndCount(rateLimitWaitSeconds); c == 0 {
		t.Error("rate-limit wait not recorded")
	}
}

func TestConcurrencyBound(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	s := &testSender{hold: func(context.Context) error { time.Sleep(2 * time.Millisecond); return nil }}
	d.Ensure("p", Settings{Concurrency: 3}, s)
	for i := range 30 {
		mustSubmit(t, d, "p", newJob(fmt.Sprint(i)))
	}
	rec.terminal(t, 30)
	if p := s.peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak %d sends in flight, want 2..3 with concurrency 3", p)
	}
}

func TestDedup(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d, rec := newTestDispatcher(t, Options{Clock: clk, DedupWindow: time.Minute})
	gate := make(chan struct{})
	s := &testSender{hold: func(context.Context) error { <-gate; return nil }}
	d.Ensure("p", Settings{Concurrency: 1}, s)

	mustSubmit(t, d, "p", newJob("a"))
	mustSubmit(t, d, "p", newJob("b"))
	for s.inFlight.Load() == 0 {
		runtime.Gosched()
	}
	for range 3 { // a in flight, b queued: both refused
		mustSubmit(t, d, "p", newJob("a"))
		mustSubmit(t, d, "p", newJob("b"))
	}
	close(gate)
	rec.terminal(t, 2)

	mustSubmit(t, d, "p", newJob("a")) // finished within the window: refused
	rec.none(t)
	clk.Step(time.Minute)
	mustSubmit(t, d, "p", newJob("a")) // the outcome may have been lost: accepted
	rec.terminal(t, 1)
	if n := s.callCount(); n != 3 {
		t.Fatalf("%d sends, want 3 (a, b, a after the window)", n)
	}
}

func TestHangingProviderIsolation(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	hung := &testSender{hold: hangUntilCancelled}
	fast := &testSender{}
	d.Ensure("hung", Settings{Concurrency: 2, Timeout: time.Minute}, hung)
	d.Ensure("fast", Settings{Concurrency: 2}, fast)

	for i := range 6 {
		mustSubmit(t, d, "hung", newJob(fmt.Sprint("h", i)))
	}
	for hung.inFlight.Load() < 2 {
		runtime.Gosched()
	}
	start := time.Now()
	for i := range 20 {
		mustSubmit(t, d, "fast", newJob(fmt.Sprint("f", i)))
	}
	got := rec.terminal(t, 20)
	took := time.Since(start)
	for id, o := range got {
		if o.Key != "fast" || o.State != Sent {
			t.Fatalf("%s: %v on %s; want every finished job Sent on the fast provider", id, o.State, o.Key)
		}
	}
	// Relative, not absolute: the fast queue finished while every worker of
	// the hung one was still stuck, far inside the hung provider's timeout.
	if n := hung.inFlight.Load(); n != 2 {
		t.Fatalf("hung provider has %d sends in flight, want 2", n)
	}
	if took > time.Minute/2 {
		t.Fatalf("fast provider took %v, comparable to the hung provider's timeout", took)
	}
}

func TestProviderTimeout(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	d.jitter = noJitter
	d.Ensure("p", Settings{Timeout: 20 * time.Millisecond, MaxAttempts: 1}, &testSender{hold: hangUntilCancelled})
	mustSubmit(t, d, "p", newJob("a"))
	if o := rec.next(t); o.State != Failed || o.Err.Reason != senders.ReasonTimeout {
		t.Fatalf("got %v %v, want Failed with Timeout", o.State, o.Err)
	}
}

func TestUpdateKeepsQueuedJobs(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	gate := make(chan struct{})
	old := &testSender{hold: func(context.Context) error { <-gate; return nil }}
	d.Ensure("p", Settings{Concurrency: 1}, old)
	for i := range 8 {
		mustSubmit(t, d, "p", newJob(fmt.Sprint(i)))
	}
	for old.inFlight.Load() == 0 {
		runtime.Gosched()
	}

	// A rotated Secret and a bigger pool while seven jobs wait.
	rotated := &testSender{hold: func(context.Context) error { time.Sleep(2 * time.Millisecond); return nil }}
	d.Ensure("p", Settings{Concurrency: 4, PerSecond: 1000}, rotated)
	close(gate)
	got := rec.terminal(t, 8)
	for id, o := range got {
		if o.State != Sent {
			t.Fatalf("job %s: %v", id, o.State)
		}
	}
	if o, r := old.callCount(), rotated.callCount(); o != 1 || r != 7 {
		t.Fatalf("old sender %d sends, rotated %d; want 1 (in flight at the swap) and 7", o, r)
	}
	if p := rotated.peak.Load(); p < 2 {
		t.Errorf("peak %d in flight after raising concurrency to 4", p)
	}
}

func TestShrinkConcurrency(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	s := &testSender{hold: func(context.Context) error { time.Sleep(time.Millisecond); return nil }}
	d.Ensure("p", Settings{Concurrency: 4}, s)
	d.Ensure("p", Settings{Concurrency: 1}, s)
	for i := range 12 {
		mustSubmit(t, d, "p", newJob(fmt.Sprint(i)))
	}
	rec.terminal(t, 12)
	if p := s.peak.Load(); p != 1 {
		t.Fatalf("peak %d in flight after shrinking to 1", p)
	}
	d.Ensure("p", Settings{Concurrency: 3}, s)
	for i := range 12 {
		mustSubmit(t, d, "p", newJob(fmt.Sprint("again", i)))
	}
	rec.terminal(t, 12)
	if p := s.peak.Load(); p > 3 {
		t.Fatalf("peak %d in flight with concurrency 3", p)
	}
}

func TestSubmitErrors(t *testing.T) {
	d, _ := newTestDispatcher(t, Options{})
	d.Ensure("p", Settings{}, &testSender{})
	if err := d.Submit("other", newJob("a")); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("unknown provider: %v", err)
	}
	if err := d.Submit("p", Job{Msg: &senders.Message{}}); err == nil {
		t.Error("job without ID accepted")
	}
	if err := d.Submit("p", Job{ID: "a"}); err == nil {
		t.Error("job without message accepted")
	}
	d.Remove("p")
	if err := d.Submit("p", newJob("a")); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("removed provider: %v", err)
	}
	d.Stop()
	if err := d.Submit("p", newJob("a")); !errors.Is(err, ErrStopped) {
		t.Errorf("after Stop: %v", err)
	}
}

func TestRemoveCancelsInFlight(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	hung := &testSender{hold: hangUntilCancelled}
	d.Ensure("p", Settings{Concurrency: 1}, hung)
	mustSubmit(t, d, "p", newJob("a"))
	mustSubmit(t, d, "p", newJob("b"))
	for hung.inFlight.Load() == 0 {
		runtime.Gosched()
	}
	d.Remove("p")
	for hung.inFlight.Load() != 0 {
		runtime.Gosched()
	}
	// The one in flight may or may not have reached the provider; the
	// queued one never started. Both are reported, so the caller can plan
	// them again.
	if got := rec.ended(t, 2); got["a"] != Interrupted || got["b"] != Dropped {
		t.Errorf("outcomes %v, want a Interrupted and b Dropped", got)
	}
	rec.none(t)
	if calls := hung.callsCopy(); len(calls) != 1 || !errors.Is(calls[0].ctxE, context.Canceled) {
		t.Fatalf("calls %+v, want one, cancelled", calls)
	}
}

func TestStopDrainsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	clk := clocktesting.NewFakeClock(time.Now())
	rec := newRecorder()
	d := New(Options{Reporter: rec.report, Clock: clk})
	hung := &testSender{hold: hangUntilCancelled}
	d.Ensure("hung", Settings{Concurrency: 3}, hung)
	d.Ensure("idle", Settings{Concurrency: 5}, &testSender{})
	for i := range 5 {
		mustSubmit(t, d, "hung", newJob(fmt.Sprint(i)))
		later := newJob(fmt.Sprint("later", i))
		later.NotBefore = clk.Now().Add(time.Hour)
		mustSubmit(t, d, "idle", later)
	}
	for hung.inFlight.Load() < 3 {
		runtime.Gosched()
	}

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- d.Run(ctx) }()
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after its context ended")
	}
	d.Stop() // again: a no-op

	if n := hung.inFlight.Load(); n != 0 {
		t.Fatalf("%d sends still in flight after Stop", n)
	}
	for _, c := range hung.callsCopy() {
		if !errors.Is(c.ctxE, context.Canceled) {
			t.Fatalf("in-flight send not cancelled: %+v", c)
		}
	}
	got := rec.ended(t, 10)
	count := map[State]int{}
	for _, st := range got {
		count[st]++
	}
	if len(got) != 10 || count[Interrupted] != 3 || count[Dropped] != 7 {
		t.Errorf("outcomes %v, want the 3 in flight Interrupted and the 7 queued Dropped", got)
	}
	rec.none(t)
	// The workqueues' own goroutines exit just after ShutDown; allow them a moment.
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Stop:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestMetrics(t *testing.T) {
	RegisterMetrics()
	RegisterMetrics() // the manager may be built twice in tests

	d, rec := newTestDispatcher(t, Options{})
	d.jitter = noJitter
	d.Ensure("metrics", Settings{}, &testSender{script: []error{senders.Transient(senders.ReasonUnavailable, "", "")}})
	mustSubmit(t, d, "metrics", newJob("a"))
	rec.terminal(t, 1)
	for name, want := range map[string]float64{
		"success":   testutil.ToFloat64(attemptsTotal.WithLabelValues("metrics", "success")),
		"transient": testutil.ToFloat64(attemptsTotal.WithLabelValues("metrics", "transient")),
		"retries":   testutil.ToFloat64(retriesTotal.WithLabelValues("metrics")),
		"sent":      testutil.ToFloat64(finishedTotal.WithLabelValues("metrics", "sent")),
	} {
		if want != 1 {
			t.Errorf("%s = %v, want 1", name, want)
		}
	}
	if depth := testutil.ToFloat64(queueDepth.WithLabelValues("metrics")); depth != 0 {
		t.Errorf("depth %v after the only job finished", depth)
	}
	d.Remove("metrics")
	if n := testutil.CollectAndCount(queueDepth, "herald_dispatch_queue_depth"); n != 0 {
		t.Errorf("%d depth series left after Remove", n)
	}
}

// closingSender is a testSender that holds a resource: it counts Close
// calls and records a send that starts after one.
type closingSender struct {
	testSender
	closes        atomic.Int32
	sendAfterShut atomic.Bool
}

func (s *closingSender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	if s.closes.Load() > 0 {
		s.sendAfterShut.Store(true)
	}
	return s.testSender.Send(ctx, to, msg)
}

func (s *closingSender) Close() error {
	s.closes.Add(1)
	return nil
}

func (s *closingSender) check(t *testing.T, name string, want int32) {
	t.Helper()
	if n := s.closes.Load(); n != want {
		t.Errorf("%s closed %d times, want %d", name, n, want)
	}
	if s.sendAfterShut.Load() {
		t.Errorf("%s was sent on after Close", name)
	}
}

func TestEnsureClosesReplacedSenderAfterInFlight(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	gate := make(chan struct{})
	old := &closingSender{testSender: testSender{hold: func(context.Context) error { <-gate; return nil }}}
	d.Ensure("p", Settings{Concurrency: 1}, old)
	mustSubmit(t, d, "p", newJob("a"))
	for old.inFlight.Load() == 0 {
		runtime.Gosched()
	}

	// New settings, same sender: nothing to close.
	d.Ensure("p", Settings{Concurrency: 2}, old)
	old.check(t, "unchanged sender", 0)

	rotated := &closingSender{}
	d.Ensure("p", Settings{Concurrency: 2}, rotated)
	old.check(t, "old sender with a send in flight", 0)
	close(gate)
	mustSubmit(t, d, "p", newJob("b"))
	rec.terminal(t, 2)
	old.check(t, "old sender", 1)
	rotated.check(t, "current sender", 0)

	// Replacing an idle sender closes it at once.
	third := &closingSender{}
	d.Ensure("p", Settings{}, third)
	rotated.check(t, "idle replaced sender", 1)
	d.Stop()
	third.check(t, "sender at Stop", 1)
	d.Stop()
	third.check(t, "sender after a second Stop", 1)
}

func TestRemoveClosesSender(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	idle := &closingSender{}
	d.Ensure("idle", Settings{}, idle)
	d.Remove("idle")
	idle.check(t, "idle sender", 1)

	hung := &closingSender{testSender: testSender{hold: hangUntilCancelled}}
	d.Ensure("hung", Settings{Concurrency: 1}, hung)
	mustSubmit(t, d, "hung", newJob("a"))
	for hung.inFlight.Load() == 0 {
		runtime.Gosched()
	}
	d.Remove("hung")
	deadline := time.Now().Add(waitLimit)
	for hung.closes.Load() == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	hung.check(t, "sender removed mid-send", 1)
	if o := rec.next(t); o.JobID != "a" || o.State != Interrupted {
		t.Errorf("outcome %+v, want a Interrupted", o)
	}
	rec.none(t)

	d.Stop()
	late := &closingSender{}
	d.Ensure("late", Settings{}, late)
	late.check(t, "sender given after Stop", 1)
}

// A queue starts no send while MaxUnrecorded of its sends are accepted but
// not recorded: that is all a crash can re-send, whatever the backlog.
func TestUnrecordedBound(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{MaxUnrecorded: 3})
	s := &testSender{}
	d.Ensure("p", Settings{Concurrency: 10}, s)
	for i := range 10 {
		mustSubmit(t, d, "p", newJob(fmt.Sprint(i)))
	}
	first := []Outcome{rec.next(t), rec.next(t), rec.next(t)}
	rec.none(t)
	if n := s.callCount(); n != 3 {
		t.Fatalf("%d sends with 3 unrecorded allowed", n)
	}
	if n := d.Unrecorded(); n != 3 {
		t.Errorf("Unrecorded() = %d, want 3", n)
	}
	// Recording one lets exactly one more go; recording twice changes nothing.
	d.Recorded(first[0])
	d.Recorded(first[0])
	next := rec.next(t)
	rec.none(t)
	if n := s.callCount(); n != 4 {
		t.Fatalf("%d sends after one recorded, want 4", n)
	}
	for _, o := range append(first[1:], next) {
		d.Recorded(o)
	}
	for range 6 {
		d.Recorded(rec.next(t))
	}
	if n := s.callCount(); n != 10 {
		t.Errorf("%d sends in all, want 10", n)
	}
	if n := d.Unrecorded(); n != 0 {
		t.Errorf("Unrecorded() = %d at the end, want 0", n)
	}
}

// Failed and retried attempts hold no place: a crash after them re-sends
// nothing that the retry would not have sent anyway.
func TestUnrecordedOnlySent(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	d, rec := newTestDispatcher(t, Options{MaxUnrecorded: 1, Clock: clk})
	d.jitter = maxJitter
	s := &testSender{script: []error{senders.Transient("TransientError", "503", ""), senders.Permanent("InvalidAddress", "", "")}}
	d.Ensure("p", Settings{Concurrency: 1, MaxAttempts: 3, InitialBackoff: time.Minute}, s)
	mustSubmit(t, d, "p", newJob("retry"))
	if o := rec.next(t); o.State != Retrying {
		t.Fatalf("first outcome %v", o.State)
	}
	mustSubmit(t, d, "p", newJob("bad"))
	if o := rec.next(t); o.JobID != "bad" || o.State != Failed {
		t.Fatalf("second outcome %+v, want bad Failed while retry backs off", o)
	}
	if n := d.Unrecorded(); n != 0 {
		t.Errorf("Unrecorded() = %d after a retry and a failure, want 0", n)
	}
}

// A place whose outcome is never recorded is freed after RecordTimeout, so
// a lost outcome cannot stall a provider for ever.
func TestUnrecordedTimeout(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	d, rec := newTestDispatcher(t, Options{MaxUnrecorded: 1, RecordTimeout: time.Minute, Clock: clk})
	s := &testSender{}
	d.Ensure("p", Settings{Concurrency: 2}, s)
	mustSubmit(t, d, "p", newJob("a"))
	mustSubmit(t, d, "p", newJob("b"))
	// Two workers: either job may take the one place first.
	first := rec.next(t).JobID
	other := map[string]string{"a": "b", "b": "a"}[first]
	rec.none(t)
	// The waiting worker wakes on its own timer once the place expires.
	for !clk.HasWaiters() {
		runtime.Gosched()
	}
	clk.Step(time.Minute)
	if o := rec.next(t); o.JobID != other || o.State != Sent {
		t.Errorf("outcome %+v, want %s Sent once %s's place expired", o, other, first)
	}
}

// Drain refuses new jobs, starts no attempt, lets the send in flight finish
// and waits until its outcome is recorded; Stop then reports what was
// queued as Dropped.
func TestDrain(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	release := make(chan struct{})
	s := &testSender{hold: func(ctx context.Context) error { <-release; return nil }}
	d.Ensure("p", Settings{Concurrency: 1}, s)
	mustSubmit(t, d, "p", newJob("inflight"))
	mustSubmit(t, d, "p", newJob("queued"))
	for s.inFlight.Load() == 0 {
		runtime.Gosched()
	}
	drained := make(chan int)
	go func() { drained <- d.Drain(context.Background()) }()
	for !d.draining.Load() {
		runtime.Gosched()
	}
	if err := d.Submit("p", newJob("new")); !errors.Is(err, ErrDraining) {
		t.Errorf("Submit while draining: %v, want ErrDraining", err)
	}
	close(release)
	o := rec.next(t)
	if o.JobID != "inflight" || o.State != Sent {
		t.Fatalf("outcome %+v, want inflight Sent", o)
	}
	select {
	case n := <-drained:
		t.Fatalf("Drain returned %d before the outcome was recorded", n)
	case <-time.After(50 * time.Millisecond):
	}
	d.Recorded(o)
	select {
	case n := <-drained:
		if n != 0 {
			t.Errorf("Drain left %d unrecorded", n)
		}
	case <-time.After(waitLimit):
		t.Fatal("Drain did not return once everything was recorded")
	}
	d.Stop()
	if o := rec.next(t); o.JobID != "queued" || o.State != Dropped {
		t.Errorf("outcome %+v, want queued Dropped", o)
	}
	if n := s.callCount(); n != 1 {
		t.Errorf("%d sends, want only the one in flight", n)
	}
	// A bounded drain gives up with what is still unrecorded.
	d2, rec2 := newTestDispatcher(t, Options{})
	d2.Ensure("p", Settings{}, &testSender{})
	mustSubmit(t, d2, "p", newJob("x"))
	rec2.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n := d2.Drain(ctx); n != 1 {
		t.Errorf("bounded Drain left %d, want 1", n)
	}
}

// One namespace's backlog on a shared provider does not hold up another's
// job (namespaces take turns), and critical jobs go before high before the
// rest, whatever order they were queued in.
func TestFairShareAndPriority(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{MaxUnrecorded: -1})
	gate := make(chan struct{})
	first := true
	var mu sync.Mutex
	s := &testSender{hold: func(ctx context.Context) error {
		mu.Lock()
		wait := first
		first = false
		mu.Unlock()
		if wait {
			<-gate // hold the only worker until everything is queued
		}
		return nil
	}}
	d.Ensure("shared", Settings{Concurrency: 1}, s)
	job := func(id, ns string, p v1alpha1.Priority) Job {
		j := newJob(id)
		j.Msg.Notification.Namespace, j.Msg.Priority = ns, p
		return j
	}
	mustSubmit(t, d, "shared", job("blocker", "a", v1alpha1.PriorityNormal))
	for s.inFlight.Load() == 0 {
		runtime.Gosched()
	}
	for i := range 200 {
		mustSubmit(t, d, "shared", job(fmt.Sprint("a", i), "a", v1alpha1.PriorityNormal))
	}
	mustSubmit(t, d, "shared", job("b0", "b", v1alpha1.PriorityNormal))
	mustSubmit(t, d, "shared", job("high", "a", v1alpha1.PriorityHigh))
	mustSubmit(t, d, "shared", job("crit", "c", v1alpha1.PriorityCritical))
	// Let the pump see them all before the worker is free.
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		q := d.queues["shared"]
		q.mu.Lock()
		n := 0
		for i := range q.ready {
			for _, f := range q.ready[i].byNS {
				n += len(f)
			}
		}
		q.mu.Unlock()
		if n == 203 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	var order []string
	for range 204 { // the blocker, a's 200, b0, high, crit
		order = append(order, rec.next(t).JobID)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	if pos["crit"] != 1 || pos["high"] != 2 {
		t.Errorf("critical at %d and high at %d, want right after the job in flight: %v", pos["crit"], pos["high"], order[:6])
	}
	if pos["b0"] > 4 {
		t.Errorf("namespace b's job went out at %d, behind a's backlog of 200: %v", pos["b0"], order[:8])
	}
}

// A job with Render is rendered just before its attempt, once per attempt,
// not when it is queued; a render error ends it Failed.
func TestRenderAtSendTime(t *testing.T) {
	d, rec := newTestDispatcher(t, Options{})
	d.jitter = noJitter
	var renders atomic.Int32
	s := &testSender{script: []error{senders.Transient("TransientError", "503", "")}}
	d.Ensure("p", Settings{Concurrency: 1, MaxAttempts: 3, InitialBackoff: time.Millisecond}, s)
	j := newJob("lazy")
	j.Render = func() (*senders.Message, error) {
		renders.Add(1)
		return &senders.Message{ID: "lazy", SMS: &senders.SMS{Text: "rendered"}}, nil
	}
	if renders.Load() != 0 {
		t.Fatal("rendered before it was queued")
	}
	mustSubmit(t, d, "p", j)
	if o := rec.ended(t, 2); o["lazy"] != Sent {
		t.Fatalf("outcomes %v", o)
	}
	if n := renders.Load(); n != 2 {
		t.Errorf("rendered %d times for 2 attempts", n)
	}
	bad := newJob("bad")
	bad.Render = func() (*senders.Message, error) {
		return nil, senders.Permanent("RenderError", "", "template: missing key")
	}
	mustSubmit(t, d, "p", bad)
	if o := rec.next(t); o.State != Failed || o.Err == nil || o.Err.Reason != "RenderError" {
		t.Errorf("outcome %+v, want Failed RenderError", o)
	}
	if n := s.callCount(); n != 2 {
		t.Errorf("%d sends, want 2 (none for the job that did not render)", n)
	}
}

// The oldest-job gauge is the age of the longest-held job of each running
// Dispatcher's queue, and is absent once the queue holds nothing.
func TestOldestJobAge(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d, _ := newTestDispatcher(t, Options{Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	gate := make(chan struct{})
	d.Ensure("age", Settings{Concurrency: 1}, &testSender{hold: func(ctx context.Context) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	mustSubmit(t, d, "age", newJob("a"))
	clk.Step(30 * time.Second)
	mustSubmit(t, d, "age", newJob("b"))
	clk.Step(10 * time.Second)

	age := func() (float64, bool) {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(oldestJobCollector{})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "age" {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	deadline := time.Now().Add(waitLimit)
	for {
		if v, ok := age(); ok && v == 40 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("oldest job age %v (present %v), want 40", v, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	for {
		if _, ok := age(); !ok {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("oldest job age still reported after both jobs finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
