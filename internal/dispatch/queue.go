package dispatch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// queue is one provider's: a client-go delaying workqueue of job IDs (which
// already guarantees one ID is never processed by two workers at once, and
// schedules retries with AddAfter on the injectable clock), a pool of
// workers, and a token bucket shared by those workers.
type queue struct {
	d      *Dispatcher
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	wq     workqueue.TypedDelayingInterface[string]
	// limiter is updated in place (SetLimitAt, SetBurstAt) so a settings
	// change keeps the tokens already spent.
	limiter *rate.Limiter
	m       queueMetrics
	// cfg is read once per attempt without taking mu.
	cfg atomic.Pointer[queueConfig]
	// submitMu keeps one SubmitAll's jobs together in the queue.
	submitMu sync.Mutex

	mu      sync.Mutex
	workers int // live worker goroutines; above Concurrency, the surplus exits
	jobs    map[string]*job
	// finished refuses IDs that ended within the dedup window; finishedOrder
	// is the same IDs oldest first, so pruning is cheap.
	finished      map[string]time.Time
	finishedOrder []tombstone
	// closed: the queue was removed or stopped; what it still holds that
	// has not started was reported Dropped.
	closed bool
	// ready are the jobs due now, in the order workers take them (see
	// lanes: priority, then namespaces in turn); the pump moves them there
	// from wq as they come due, and readyCond wakes the workers.
	ready     lanes
	readyCond *sync.Cond
	// holds are the sends started or accepted and not yet recorded (see
	// Options.MaxUnrecorded), by job ID, with when each started; freed is
	// closed and replaced whenever one goes.
	holds map[string]time.Time
	freed chan struct{}
	// breaker decides whether the provider is called (guarded by mu).
	breaker breaker
}

type queueConfig struct {
	settings Settings
	sender   *senderRef
}

// senderRef is a queue's hold on one sender. It counts the sends in flight
// on it, so that once the sender is retired (replaced by Ensure, or its
// queue closed) the last of them to return closes it, and a send never runs
// on a closed sender.
type senderRef struct {
	senders.Sender
	inFlight atomic.Int64
	retired  atomic.Bool
	once     sync.Once
}

func (r *senderRef) release() {
	if r.inFlight.Add(-1) == 0 && r.retired.Load() {
		r.close()
	}
}

// retire closes r now if no send is in flight on it, or else leaves that
// to the last release.
func (r *senderRef) retire() {
	r.retired.Store(true)
	if r.inFlight.Load() == 0 {
		r.close()
	}
}

func (r *senderRef) close() { r.once.Do(func() { _ = senders.Close(r.Sender) }) }

type job struct {
	Job
	lastErr *senders.Error
	// running: its attempt has started; ready: it waits in queue.ready;
	// due: it came due while running, for the worker to make ready (all
	// guarded by queue.mu).
	running, ready, due bool
}

type tombstone struct {
	id     string
	expiry time.Time
}

func newQueue(d *Dispatcher, key string, s Settings, sender senders.Sender) *queue {
	q := &queue{
		d:   d,
		key: key,
		wq: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{
			Clock: d.clock,
		}),
		limiter:  rate.NewLimiter(limitOf(s), s.Burst),
		m:        newQueueMetrics(key),
		jobs:     map[string]*job{},
		finished: map[string]time.Time{},
		holds:    map[string]time.Time{},
		freed:    make(chan struct{}),
		breaker:  breaker{state: CircuitClosed},
	}
	q.ctx, q.cancel = context.WithCancel(d.ctx)
	q.readyCond = sync.NewCond(&q.mu)
	q.cfg.Store(&queueConfig{settings: s, sender: &senderRef{Sender: sender}})
	q.m.depth.Set(0)
	d.workers.Add(1)
	go q.pump()
	q.resize(s.Concurrency)
	return q
}

func limitOf(s Settings) rate.Limit {
	if s.PerSecond <= 0 {
		return rate.Inf
	}
	return rate.Limit(s.PerSecond)
}

// update is called with d.mu held, which orders it against close. It
// returns the sender it replaced, for the caller to retire once d.mu is
// released; nil when sender is the one the queue already had.
func (q *queue) update(s Settings, sender senders.Sender) *senderRef {
	cur := q.cfg.Load().sender
	ref, replaced := cur, (*senderRef)(nil)
	if cur.Sender != sender {
		ref, replaced = &senderRef{Sender: sender}, cur
	}
	q.cfg.Store(&queueConfig{settings: s, sender: ref})
	now := q.d.clock.Now()
	q.limiter.SetLimitAt(now, limitOf(s))
	q.limiter.SetBurstAt(now, s.Burst)
	q.resize(s.Concurrency)
	q.mu.Lock()
	q.readyCond.Broadcast() // surplus workers exit
	q.mu.Unlock()
	return replaced
}

// acquire returns the queue's current sender, counted in flight until
// release, or nil if the queue has closed. Counting first and checking
// after closes the race with a concurrent retire: either retire sees the
// count, or this sees the sender retired or replaced.
func (q *queue) acquire() *senderRef {
	for {
		r := q.cfg.Load().sender
		r.inFlight.Add(1)
		if !r.retired.Load() && q.cfg.Load().sender == r {
			return r
		}
		r.release()
		if q.cfg.Load().sender.retired.Load() {
			return nil // closed; a replaced sender is never current
		}
	}
}

// resize starts workers up to n. Shrinking is left to the workers: each
// checks between jobs whether it is surplus.
func (q *queue) resize(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ; q.workers < n; q.workers++ {
		q.d.workers.Add(1)
		go q.work()
	}
}

// surplus, with q.mu held, reports whether there are more workers than
// the settings ask for.
func (q *queue) surplus() bool { return q.workers > q.cfg.Load().settings.Concurrency }

// close is called without d.mu held: retiring the sender may close it. Jobs
// whose attempt has not started are reported Dropped; those in flight are
// cancelled and report themselves Interrupted.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	var dropped []*job
	for id, j := range q.jobs {
		if !j.running {
			dropped = append(dropped, j)
			delete(q.jobs, id)
		}
	}
	q.m.depth.Set(float64(len(q.jobs)))
	q.ready.clear()
	q.readyCond.Broadcast()
	q.mu.Unlock()
	q.cancel()
	q.wq.ShutDown()
	q.cfg.Load().sender.retire()
	now := q.d.clock.Now()
	for _, j := range dropped {
		q.d.report(Outcome{Key: q.key, Provider: j.Provider, Alone: j.Alone, JobID: j.ID, Notification: j.Msg.Notification, Attempt: j.Attempts,
			Start: now, End: now, State: Dropped})
	}
}

// hold takes a place among the queue's unrecorded sends for job id,
// waiting while there is none. It returns false if the queue closed.
func (q *queue) hold(id string) bool {
	max := q.d.maxUnrecorded
	for {
		q.mu.Lock()
		q.expireHolds()
		if _, ok := q.holds[id]; ok || max < 0 || len(q.holds) < max {
			q.holds[id] = q.d.clock.Now()
			q.m.unrecorded.Set(float64(len(q.holds)))
			q.mu.Unlock()
			return true
		}
		freed := q.freed
		q.mu.Unlock()
		q.m.windowWaits.Inc()
		// Wake at least every RecordTimeout/4 to release what expired.
		t := q.d.clock.NewTimer(q.d.recordTimeout / 4)
		select {
		case <-freed:
			t.Stop()
		case <-t.C():
		case <-q.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// unhold frees id's place among the unrecorded sends.
func (q *queue) unhold(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.holds[id]; !ok {
		return
	}
	delete(q.holds, id)
	q.m.unrecorded.Set(float64(len(q.holds)))
	close(q.freed)
	q.freed = make(chan struct{})
}

func (q *queue) heldCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireHolds()
	return len(q.holds)
}

// expireHolds, with q.mu held, frees places whose outcome was never
// confirmed recorded within the record timeout.
func (q *queue) expireHolds() {
	now := q.d.clock.Now()
	n := len(q.holds)
	for id, at := range q.holds {
		if now.Sub(at) >= q.d.recordTimeout {
			delete(q.holds, id)
		}
	}
	if len(q.holds) < n {
		q.m.unrecorded.Set(float64(len(q.holds)))
		close(q.freed)
		q.freed = make(chan struct{})
	}
}

func (q *queue) submit(j Job) {
	now := q.d.clock.Now()
	q.mu.Lock()
	if _, held := q.jobs[j.ID]; held || q.closed {
		q.mu.Unlock()
		return
	}
	if expiry, ok := q.finished[j.ID]; ok {
		if now.Before(expiry) {
			q.mu.Unlock()
			return
		}
		delete(q.finished, j.ID)
	}
	q.jobs[j.ID] = &job{Job: j}
	q.m.depth.Set(float64(len(q.jobs)))
	q.mu.Unlock()

	q.wq.AddAfter(j.ID, j.NotBefore.Sub(now))
}

// pump moves jobs from the delaying workqueue, as they come due, to the
// ready lanes the workers take from.
func (q *queue) pump() {
	defer q.d.workers.Done()
	for {
		id, shutdown := q.wq.Get()
		if shutdown {
			return
		}
		q.wq.Done(id)
		q.mu.Lock()
		switch j := q.jobs[id]; {
		case j == nil || q.closed || j.ready:
		case j.running:
			j.due = true
		default:
			j.ready = true
			q.ready.push(j)
			q.readyCond.Signal()
		}
		q.mu.Unlock()
	}
}

func (q *queue) work() {
	defer q.d.workers.Done()
	for {
		q.mu.Lock()
		for q.ready.empty() && !q.closed && !q.surplus() {
			q.readyCond.Wait()
		}
		if q.closed || q.surplus() {
			q.workers--
			if !q.ready.empty() {
				q.readyCond.Signal() // hand the wake-up on to a worker that stays
			}
			q.mu.Unlock()
			return
		}
		j := q.ready.pop()
		j.ready = false
		q.mu.Unlock()
		q.process(j.ID)
	}
}

// process makes one attempt at job id, or ends it without one.
func (q *queue) process(id string) {
	if q.ctx.Err() != nil {
		return // closing: Get still hands out what was queued
	}
	q.mu.Lock()
	j := q.jobs[id]
	q.mu.Unlock()
	if j == nil || q.d.draining.Load() {
		return // draining: it stays queued, and Stop reports it Dropped
	}
	cfg := q.cfg.Load()
	s := cfg.settings
	clk := q.d.clock

	now := clk.Now()
	out := Outcome{Key: q.key, Provider: j.Provider, Alone: j.Alone, JobID: id, Notification: j.Msg.Notification,
		Attempt: j.Attempts, Start: now, End: now}
	if expired(j, now) {
		out.State, out.Err = Expired, j.lastErr
		q.finish(j, out)
		return
	}
	if j.Attempts >= s.MaxAttempts {
		// Attempts used up before this run (a restart, or a lowered
		// maxAttempts); the last error may be gone with the old process.
		out.State, out.Err = Failed, j.lastErr
		if out.Err == nil {
			out.Err = senders.Transient(v1alpha1.ReasonTransientError, "", "no attempts left")
		}
		q.finish(j, out)
		return
	}
	if !q.waitForToken(j) {
		if q.ctx.Err() != nil {
			return
		}
		now = clk.Now()
		out.Start, out.End = now, now
		out.State, out.Err = Expired, j.lastErr
		q.finish(j, out)
		return
	}

	if !q.hold(id) {
		return // closed while waiting: reported Dropped
	}
	q.mu.Lock()
	if q.closed || q.d.draining.Load() {
		q.mu.Unlock()
		q.unhold(id)
		return
	}
	j.running = true
	q.mu.Unlock()
	sender := q.acquire()
	if sender == nil {
		q.unhold(id)
		q.finish(j, Outcome{Key: q.key, Provider: j.Provider, Alone: j.Alone, JobID: id, Notification: j.Msg.Notification, Attempt: j.Attempts, Start: now, End: now, State: Dropped})
		return
	}
	msg := j.Msg
	if j.Render != nil {
		m, err := j.Render()
		if err != nil {
			sender.release()
			q.unhold(id)
			out.State, out.Err = Failed, senders.AsError(err)
			q.finish(j, out)
			return
		}
		msg = m
	}
	allowed, probe, retryAt := q.allow(s, clk.Now())
	if !allowed {
		sender.release()
		q.unhold(id)
		if j.FailOver {
			// Another provider can take it: fail it over at once.
			out.State, out.Err = Failed, senders.Permanent(v1alpha1.ReasonCircuitOpen, "", "the circuit is open: "+q.circuitError())
			q.finish(j, out)
			return
		}
		if expired(j, retryAt) {
			// It would still be waiting when its time is up.
			out.State, out.Err = Expired, j.lastErr
			q.finish(j, out)
			return
		}
		// Nowhere else to go: wait for the probe, without using an attempt.
		q.requeue(j, retryAt.Sub(clk.Now()))
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, s.Timeout)
	out.Start = clk.Now()
	res, err := sender.Send(ctx, j.To, msg)
	out.End = clk.Now()
	cancel()
	sender.release()
	q.recordCircuit(out.End, probe, err, q.ctx.Err() != nil)
	q.m.latency.Observe(out.End.Sub(out.Start).Seconds())
	if err != nil && q.ctx.Err() != nil {
		// Cut short by Remove or Stop: the provider may or may not have
		// taken it. Say so, and keep its attempt count as it was.
		out.State, out.Err = Interrupted, senders.AsError(err)
		q.unhold(id)
		q.finish(j, out)
		return
	}
	j.Attempts++
	out.Attempt, out.Attempted = j.Attempts, true

	if err == nil {
		q.m.success.Inc()
		out.State, out.Result = Sent, res
		q.finish(j, out)
		return
	}
	e := senders.AsError(err)
	j.lastErr, out.Err = e, e
	if e.Permanent {
		q.m.permanent.Inc()
		out.State = Failed
		q.finish(j, out)
		return
	}
	q.m.transient.Inc()
	if j.Attempts >= s.MaxAttempts {
		out.State = Failed
		q.finish(j, out)
		return
	}
	// The provider's Retry-After is a floor, not a cap: waiting less only
	// earns another 429.
	wait := max(s.backoff(j.Attempts, q.d.jitter), e.RetryAfter)
	next := out.End.Add(wait)
	if expired(j, next) {
		out.State = Expired
		q.finish(j, out)
		return
	}
	q.m.retries.Inc()
	out.State, out.NextAttempt = Retrying, next
	j.NotBefore = next
	q.unhold(id) // a retry follows anyway: a crash now repeats nothing extra
	// Reported before the retry can start: should it come due at once,
	// the pump leaves it to this worker (due), so its outcome follows.
	q.requeueReporting(j, wait, &out)
}

// requeue puts a running job back to come due after wait.
func (q *queue) requeue(j *job, wait time.Duration) { q.requeueReporting(j, wait, nil) }

// requeueReporting puts a running job back to come due after wait,
// reporting out (when not nil) before it can start again.
func (q *queue) requeueReporting(j *job, wait time.Duration, out *Outcome) {
	q.wq.AddAfter(j.ID, wait)
	if out != nil {
		q.d.report(*out)
	}
	q.mu.Lock()
	j.running = false
	if j.due && !q.closed {
		j.due, j.ready = false, true
		q.ready.push(j)
		q.readyCond.Signal()
	}
	q.mu.Unlock()
}

// allow asks the breaker, with the queue's current settings, whether the
// provider may be called now.
func (q *queue) allow(s Settings, now time.Time) (ok, probe bool, retryAt time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.breaker.failures, q.breaker.coolDown = max(s.BreakerFailures, 0), s.BreakerCoolDown
	return q.breaker.allow(now)
}

// recordCircuit feeds an attempt's result to the breaker and reports a
// change of state. A send cut short by a stop says nothing of the
// provider; it only gives back the probe.
func (q *queue) recordCircuit(now time.Time, probe bool, err error, interrupted bool) {
	q.mu.Lock()
	if interrupted {
		if probe {
			q.breaker.probing = false
		}
		q.mu.Unlock()
		return
	}
	var e *senders.Error
	if err != nil {
		e = senders.AsError(err)
	}
	changed := q.breaker.record(now, probe, e)
	state := q.breaker.state
	q.mu.Unlock()
	if changed {
		q.m.circuit(state)
		if q.d.onCircuit != nil {
			q.d.onCircuit(q.key, state)
		}
	}
}

// circuitError is the failure that opened the circuit.
func (q *queue) circuitError() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.breaker.lastErr
}

func expired(j *job, t time.Time) bool {
	return !j.Deadline.IsZero() && !t.Before(j.Deadline)
}

// waitForToken takes a token from the bucket, waiting on the clock if need
// be. It returns false if the queue closed, or if the token would come
// after the job's deadline (the job is then expired at once instead of
// holding a worker until then). A worker waiting here keeps its slot: the
// bucket is the bottleneck anyway, and the jobs behind it stay visible in
// the queue depth.
func (q *queue) waitForToken(j *job) bool {
	if q.limiter.Limit() == rate.Inf {
		return true
	}
	clk := q.d.clock
	now := clk.Now()
	r := q.limiter.ReserveN(now, 1)
	if !r.OK() {
		return true // burst below 1 cannot happen after withDefaults; never block on it
	}
	delay := r.DelayFrom(now)
	if delay <= 0 {
		return true
	}
	if expired(j, now.Add(delay)) {
		r.CancelAt(now)
		return false
	}
	t := clk.NewTimer(delay)
	select {
	case <-t.C():
		q.m.rateWait.Observe(delay.Seconds())
		return true
	case <-q.ctx.Done():
		t.Stop()
		r.CancelAt(clk.Now())
		return false
	}
}

// finish ends job j with out and remembers its ID for the dedup window. A
// Sent job keeps its place among the unrecorded sends until Recorded.
func (q *queue) finish(j *job, out Outcome) {
	if out.State != Sent {
		q.unhold(j.ID)
	}
	now := q.d.clock.Now()
	q.mu.Lock()
	delete(q.jobs, j.ID)
	q.m.depth.Set(float64(len(q.jobs)))
	for len(q.finishedOrder) > 0 && !now.Before(q.finishedOrder[0].expiry) {
		old := q.finishedOrder[0]
		q.finishedOrder = q.finishedOrder[1:]
		if exp, ok := q.finished[old.id]; ok && exp.Equal(old.expiry) {
			delete(q.finished, old.id)
		}
	}
	if q.d.dedupWindow > 0 && out.State != Dropped && out.State != Interrupted {
		expiry := now.Add(q.d.dedupWindow)
		q.finished[j.ID] = expiry
		q.finishedOrder = append(q.finishedOrder, tombstone{id: j.ID, expiry: expiry})
	}
	q.mu.Unlock()

	switch out.State {
	case Sent:
		q.m.sent.Inc()
	case Failed:
		q.m.failed.Inc()
	case Expired:
		q.m.expired.Inc()
	}
	q.d.report(out)
}
