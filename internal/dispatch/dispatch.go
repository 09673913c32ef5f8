// Package dispatch moves rendered messages to providers. It keeps one queue
// per provider, each with its own worker pool, token bucket and retry policy,
// so a slow or failing provider never holds up another; and it reports every
// attempt to the caller, which owns the durable record of each delivery (the
// Notification status).
//
// The queues live only in memory. A job that has not started its attempt
// when its queue is removed or the dispatcher stops is reported Dropped, so
// the caller plans it again; a send cut short by that is not reported (its
// result is unknown): the delivery's status still says it is pending, and
// the controller submits it again after a restart, resuming the attempt
// count and next attempt time from that status. Delivery is therefore at
// least once, never silently lost.
//
// What a crash can re-send is bounded: a queue starts a send only while
// fewer than Options.MaxUnrecorded of its sends are started or accepted but
// not yet recorded by the caller (Recorded), so the sends a crash leaves
// unrecorded are at most that many per queue, whatever the fan-out. Drain
// stops new sends and waits for those in flight to be recorded, for a
// rollout that re-sends nothing.
//
// The manager runs a Dispatcher with mgr.Add(manager.RunnableFunc(d.Run)) and
// calls RegisterMetrics once; provider reconcilers call Ensure and Remove, and
// the Notification reconciler calls Submit.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/herald-dev/herald/senders"
)

// Job is one delivery to send through one provider.
type Job struct {
	// ID names the delivery. A job whose ID is queued, in flight, or finished
	// within the dedup window is not queued again, so the controller may
	// submit every pending delivery on every reconcile.
	ID  string
	To  senders.Address
	Msg *senders.Message
	// Attempts is the number of attempts already made (from status), so the
	// count resumes after a restart instead of starting over.
	Attempts int
	// NotBefore holds the first attempt made here until then (a retry's next
	// attempt time read back from status after a restart).
	NotBefore time.Time
	// Deadline ends the job as Expired if no attempt has succeeded by then;
	// an attempt is never started after it. Zero means none.
	Deadline time.Time
	// Provider names the provider for the record (Kind/name); outcomes
	// carry it back.
	Provider string
	// Alone: the only delivery of its Notification, so nothing is gained by
	// waiting for other outcomes to share its status write (see
	// Outcome.Alone).
	Alone bool
	// Render, when set, builds the message's content just before each
	// attempt, so a queue holds what a message is made from, not the
	// rendered bytes (a large fan-out of large bodies behind a slow
	// provider would otherwise sit in memory). Msg then carries only the
	// metadata (ID, Notification, Priority, Expiration). An error ends the
	// job Failed with it.
	Render func() (*senders.Message, error)
	// FailOver: another provider can take the job, so while this one's
	// circuit is open it fails at once (reason CircuitOpen) instead of
	// waiting for the circuit's probe.
	FailOver bool
}

// State is what became of a job after an attempt.
type State int

const (
	// Sent: the provider accepted the message. Terminal.
	Sent State = iota + 1
	// Retrying: the attempt failed transiently; another is due at NextAttempt.
	Retrying
	// Failed: a permanent error, or the last allowed attempt failed. Terminal.
	Failed
	// Expired: the deadline passed before the message could be sent. Terminal.
	Expired
	// Dropped: the queue was removed or the dispatcher stopped before the
	// job's attempt started; nothing was sent. The job is no longer held
	// and may be submitted again.
	Dropped
	// Interrupted: the queue was removed or the dispatcher stopped while
	// the attempt was in flight; the provider may or may not have taken
	// the message. The job is no longer held.
	Interrupted
)

func (s State) String() string {
	switch s {
	case Sent:
		return "Sent"
	case Retrying:
		return "Retrying"
	case Failed:
		return "Failed"
	case Expired:
		return "Expired"
	case Dropped:
		return "Dropped"
	case Interrupted:
		return "Interrupted"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Terminal reports whether the job is over.
func (s State) Terminal() bool { return s == Sent || s == Failed || s == Expired }

// Outcome reports one attempt, or the end of a job without one.
type Outcome struct {
	// Key is the provider key the job was submitted under, Provider the
	// job's Provider.
	Key, Provider string
	JobID         string
	Notification  senders.NotificationRef
	// Attempt is the number of this attempt, counting those made before a
	// restart. When Attempted is false no call was made (the job expired or
	// had used up its attempts before this run) and Attempt is the count
	// made so far.
	Attempt   int
	Attempted bool
	// Start and End bracket the provider call (equal when there was none).
	Start, End time.Time
	State      State
	// Result is the provider's answer when State is Sent.
	Result senders.Result
	// NextAttempt is when the job is tried again, when State is Retrying.
	NextAttempt time.Time
	// Alone is the job's Alone.
	Alone bool
	// Err is the classified failure: set for Retrying and Failed, and for
	// Expired when the last attempt failed. Err.Reason is the delivery's
	// reason.
	Err *senders.Error
}

// Reporter receives every Outcome. It is called on the worker goroutine that
// made the attempt, before the job's next attempt can start, so the outcomes
// of one job arrive in order. It is shared by every queue, so it must be fast:
// a slow Reporter stalls the workers of every provider, undoing their
// isolation. Buffer the outcomes and coalesce status writes elsewhere. It must
// not call Stop, which waits for the worker that is calling it.
type Reporter func(Outcome)

// Options configure a Dispatcher.
type Options struct {
	// Reporter receives every Outcome; nil discards them.
	Reporter Reporter
	// Clock drives backoff, rate-limit waits, deadlines and outcome times;
	// nil is the real clock. Provider call timeouts always use real time.
	Clock clock.WithTicker
	// DedupWindow is how long a finished job's ID is still refused, so a
	// submit racing the status write of its outcome does not send it again
	// (default 2m; negative disables). If the outcome was lost instead, the
	// job is accepted again once the window has passed.
	DedupWindow time.Duration
	// MaxUnrecorded bounds, per queue, the sends started or accepted whose
	// outcome the caller has not yet confirmed recorded with Recorded: what
	// a crash can re-send. Default 128; negative disables the bound.
	MaxUnrecorded int
	// RecordTimeout releases a send's place in that bound if Recorded never
	// comes (the caller lost the outcome), so a queue cannot stall for ever
	// (default 1m).
	RecordTimeout time.Duration
	// OnCircuit is told when a provider's circuit opens or closes (see
	// Circuit). It is called on a worker goroutine: it must be fast and
	// must not call back into the Dispatcher.
	OnCircuit func(key string, c Circuit)
}

// Defaults for Options.
const (
	DefaultDedupWindow   = 2 * time.Minute
	DefaultMaxUnrecorded = 128
	DefaultRecordTimeout = time.Minute
)

// Errors returned by Submit.
var (
	ErrUnknownProvider = errors.New("dispatch: no queue for provider")
	ErrStopped         = errors.New("dispatch: dispatcher stopped")
	ErrDraining        = errors.New("dispatch: dispatcher draining for shutdown")
)

// Dispatcher holds one queue per provider key. All methods are safe for
// concurrent use.
type Dispatcher struct {
	report      Reporter
	clock       clock.WithTicker
	dedupWindow time.Duration
	// maxUnrecorded and recordTimeout: see Options.
	maxUnrecorded int
	recordTimeout time.Duration
	onCircuit     func(key string, c Circuit)
	// draining: no attempt starts and Submit refuses new jobs.
	draining atomic.Bool
	// jitter picks the backoff in [0, d]; a field so tests can pin it.
	jitter func(d time.Duration) time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	// workers counts every worker goroutine, including those of removed
	// queues still finishing a cancelled send, so Stop can wait for all.
	workers sync.WaitGroup

	mu      sync.RWMutex
	queues  map[string]*queue
	stopped bool
}

// New returns a Dispatcher with no queues. Its workers run from the first
// Ensure until Stop, or until the context passed to Run ends.
func New(opts Options) *Dispatcher {
	d := &Dispatcher{
		report:      opts.Reporter,
		clock:       opts.Clock,
		dedupWindow: opts.DedupWindow,
		onCircuit:   opts.OnCircuit,
		jitter:      fullJitter,
		queues:      map[string]*queue{},

		maxUnrecorded: opts.MaxUnrecorded,
		recordTimeout: opts.RecordTimeout,
	}
	if d.maxUnrecorded == 0 {
		d.maxUnrecorded = DefaultMaxUnrecorded
	}
	if d.recordTimeout <= 0 {
		d.recordTimeout = DefaultRecordTimeout
	}
	if d.report == nil {
		d.report = func(Outcome) {}
	}
	if d.clock == nil {
		d.clock = clock.RealClock{}
	}
	if d.dedupWindow == 0 {
		d.dedupWindow = DefaultDedupWindow
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Ensure creates the queue for key, or updates it in place: new settings
// apply to attempts that start afterwards and the new sender (say, after a
// rotated Secret) to sends that start afterwards; queued jobs are kept and
// sends in flight finish on the old sender. sender must not be nil: a
// provider that cannot send (bad Secret) is removed, not given a nil sender.
//
// The dispatcher owns the senders it is given: one that is replaced, or
// whose queue is removed or stopped, is closed (senders.Close) as soon as
// the last send on it has returned. After Stop, Ensure only closes sender.
func (d *Dispatcher) Ensure(key string, settings Settings, sender senders.Sender) {
	settings = settings.withDefaults()
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		_ = senders.Close(sender)
		return
	}
	var replaced *senderRef
	if q, ok := d.queues[key]; ok {
		replaced = q.update(settings, sender)
	} else {
		d.queues[key] = newQueue(d, key, settings, sender)
	}
	d.mu.Unlock()
	// Outside d.mu: closing can take a moment (an SMTP QUIT per idle
	// connection) and must not hold up Submit on every queue.
	if replaced != nil {
		replaced.retire()
	}
}

// Remove stops key's queue: sends in flight are cancelled, queued jobs are
// reported Dropped, and its sender is closed once those sends have
// returned. It does not wait for the workers; Stop does.
func (d *Dispatcher) Remove(key string) {
	d.mu.Lock()
	q, ok := d.queues[key]
	delete(d.queues, key)
	d.mu.Unlock()
	if ok {
		q.close()
		deleteQueueMetrics(key)
	}
}

// SubmitAll queues jobs on key's queue, next to each other: another
// caller's jobs do not come between them. A Notification's jobs then go
// out together and their outcomes share its status writes, which is what
// frees their places among the unrecorded sends. Jobs already held are
// ignored, as by Submit.
func (d *Dispatcher) SubmitAll(key string, jobs []Job) error {
	for _, j := range jobs {
		if j.ID == "" || j.Msg == nil {
			return fmt.Errorf("dispatch: job %q has no ID or no message", j.ID)
		}
	}
	q, err := d.queue(key)
	if err != nil {
		return err
	}
	q.submitMu.Lock()
	defer q.submitMu.Unlock()
	for _, j := range jobs {
		q.submit(j)
	}
	return nil
}

func (d *Dispatcher) queue(key string) (*queue, error) {
	d.mu.RLock()
	q, ok := d.queues[key]
	stopped := d.stopped
	d.mu.RUnlock()
	switch {
	case stopped:
		return nil, ErrStopped
	case d.draining.Load():
		return nil, ErrDraining
	case !ok:
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, key)
	}
	return q, nil
}

// Submit queues job on key's queue. A job whose ID is already held (queued,
// backing off or in flight) or recently finished is ignored and Submit
// returns nil: submitting again is how the controller makes sure, after
// every reconcile, that nothing is missing.
func (d *Dispatcher) Submit(key string, job Job) error { return d.SubmitAll(key, []Job{job}) }

// Run blocks until ctx ends, then stops the dispatcher. Its signature fits
// manager.RunnableFunc.
func (d *Dispatcher) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.ctx.Done():
	}
	d.Stop()
	return nil
}

// Recorded tells the dispatcher that the caller has durably recorded o (for
// the Notification reconciler: the status write that holds it succeeded),
// which frees o's place among its queue's unrecorded sends. Calling it for
// an outcome that holds none (not Sent, or already recorded) does nothing.
func (d *Dispatcher) Recorded(o Outcome) {
	if o.State != Sent {
		return
	}
	d.mu.RLock()
	q := d.queues[o.Key]
	d.mu.RUnlock()
	if q != nil {
		q.unhold(o.JobID)
	}
}

// Unrecorded is the number of sends started or accepted and not yet
// recorded, over every queue.
func (d *Dispatcher) Unrecorded() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	for _, q := range d.queues {
		n += q.heldCount()
	}
	return n
}

// Drain prepares a graceful stop: Submit refuses new jobs and no attempt
// starts (queued jobs stay queued, to be reported Dropped by Stop); sends
// in flight finish and Drain waits until every accepted send has been
// recorded, or ctx ends. It returns the number still unrecorded. Stop
// follows it.
func (d *Dispatcher) Drain(ctx context.Context) int {
	d.draining.Store(true)
	for {
		n := d.Unrecorded()
		if n == 0 {
			return 0
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return n
		case <-t.C:
		}
	}
}

// Stop cancels every send in flight, reports every queued job Dropped,
// waits for the workers to exit and closes every sender. It is safe to call
// more than once.
func (d *Dispatcher) Stop() {
	d.mu.Lock()
	queues := d.queues
	d.queues = map[string]*queue{}
	d.stopped = true
	d.mu.Unlock()
	d.cancel()
	for key, q := range queues {
		q.close()
		deleteQueueMetrics(key)
	}
	d.workers.Wait()
}

// Circuit reports the circuit of key's queue and the failure that opened
// it; a provider without a queue is Closed.
func (d *Dispatcher) Circuit(key string) (Circuit, string) {
	d.mu.RLock()
	q := d.queues[key]
	d.mu.RUnlock()
	if q == nil {
		return CircuitClosed, ""
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.breaker.state, q.breaker.lastErr
}
