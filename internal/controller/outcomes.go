package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/herald-dev/herald/internal/dispatch"
)

// Outcomes buffers what the dispatcher reports until the Notification
// reconciler folds it into status. Reporting only appends and schedules a
// reconcile, so provider workers never wait on the API server; many outcomes
// for one Notification coalesce into one status write.
type Outcomes struct {
	// FlushDelay holds a reconcile back so outcomes arriving close together
	// share one status write.
	FlushDelay time.Duration
	// RetryFlushDelay is the same for outcomes that only say a retry is due:
	// longer, so a failing provider's retries cost few writes and do not
	// crowd out other Notifications' reconciles. Losing one to a crash only
	// loses an attempt count.
	RetryFlushDelay time.Duration
	// Hold, when above FlushDelay, holds a Notification's outcomes back
	// while others of its jobs are still running, until the last reports
	// or Hold passes: a fan-out child then records its deliveries in one
	// status write rather than in a write per burst of outcomes, each
	// carrying the whole object. Only for outcomes that cannot be lost
	// while held (a journal keeps them): without one, sends wait for their
	// records (--max-unrecorded-sends), and holding records holds sends.
	Hold time.Duration
	// Recorded is told of every outcome that is written to status, or that
	// never will be (its Notification is gone): the dispatcher's
	// Recorded, which frees the outcome's place among unrecorded sends.
	Recorded func(dispatch.Outcome)

	pending pending[dispatch.Outcome]
	requeue requeuer

	mu sync.Mutex
	// running counts, per Notification, the jobs submitted (Expect) whose
	// end has not been reported.
	running map[types.NamespacedName]int
}

// DefaultRetryFlushDelay is Outcomes.RetryFlushDelay's default.
const DefaultRetryFlushDelay = 5 * time.Second

// flushPriority puts the reconciles that write outcomes to status behind
// those of Notifications and children just created: a fan-out's children
// start sending while earlier children's status writes wait for a worker,
// so the API server's latency on those writes does not hold up sends.
const flushPriority = -1

// NewOutcomes returns an empty buffer.
func NewOutcomes(flushDelay time.Duration) *Outcomes {
	return &Outcomes{FlushDelay: flushDelay, RetryFlushDelay: DefaultRetryFlushDelay, requeue: requeuer{priority: flushPriority}}
}

// Expect counts n jobs of key's as handed to the dispatcher (negative: n
// that were not after all), for Hold. Call it before handing them over.
func (b *Outcomes) Expect(key types.NamespacedName, n int) {
	if b.Hold <= b.FlushDelay {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == nil {
		b.running = map[types.NamespacedName]int{}
	}
	if b.running[key] += n; b.running[key] <= 0 {
		delete(b.running, key)
	}
}

// ended counts the end of one of key's jobs and reports whether others are
// still running.
func (b *Outcomes) ended(key types.NamespacedName) (othersRunning bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	left, ok := b.running[key]
	if !ok {
		return false // a replayed outcome, or Hold is off
	}
	if left <= 1 {
		delete(b.running, key)
		return false
	}
	b.running[key] = left - 1
	return true
}

// Report is the dispatcher's Reporter.
func (b *Outcomes) Report(o dispatch.Outcome) {
	key := types.NamespacedName{Namespace: o.Notification.Namespace, Name: o.Notification.Name}
	b.pending.add(key, o)
	delay := b.FlushDelay
	if o.State != dispatch.Retrying && b.ended(key) {
		// The sooner AddAfter of the job that ends last wins.
		delay = b.Hold
	}
	if o.Alone && o.State.Terminal() {
		delay = 0 // nothing else to wait for: write now
	}
	if o.State == dispatch.Retrying {
		// A sooner AddAfter for the same key (another outcome) wins.
		delay = max(delay, b.RetryFlushDelay)
	}
	b.requeue.add(key, delay)
}

// Take returns the outcomes buffered for a Notification, by job ID in the
// order they came, and forgets them. The caller must settle them with Done
// or Return.
func (b *Outcomes) Take(key types.NamespacedName) map[string][]dispatch.Outcome {
	os := b.pending.take(key)
	if len(os) == 0 {
		return nil
	}
	m := make(map[string][]dispatch.Outcome, len(os))
	for _, o := range os {
		m[o.JobID] = append(m[o.JobID], o)
	}
	return m
}

// Return puts outcomes back after a failed status write, ahead of newer ones.
func (b *Outcomes) Return(key types.NamespacedName, m map[string][]dispatch.Outcome) {
	if m == nil {
		return
	}
	var back []dispatch.Outcome
	for _, os := range m {
		back = append(back, os...)
	}
	b.pending.putBack(key, back)
}

// Len is the number of Notifications with outcomes not yet written,
// buffered or being written.
func (b *Outcomes) Len() int { return b.pending.len() }

// uncount stops counting key's jobs (it finished, or is gone): a job the
// dispatcher already held when it was submitted again never reports twice.
func (b *Outcomes) uncount(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, key)
}

// Forget drops what is buffered for a Notification that is gone.
func (b *Outcomes) Forget(key types.NamespacedName) {
	b.uncount(key)
	for _, o := range b.pending.drop(key) {
		b.recorded(o)
	}
}

// Done reports outcomes taken with Take as recorded (or never to be).
func (b *Outcomes) Done(m map[string][]dispatch.Outcome) {
	if m == nil {
		return
	}
	b.pending.done()
	for _, os := range m {
		for _, o := range os {
			b.recorded(o)
		}
	}
}

func (b *Outcomes) recorded(o dispatch.Outcome) {
	if b.Recorded != nil {
		b.Recorded(o)
	}
}

// wake queues a reconcile of key, at the priority of a flush.
func (b *Outcomes) wake(key types.NamespacedName) { b.requeue.add(key, 0) }

// Source feeds reconcile requests for reported outcomes to the controller.
func (b *Outcomes) Source() source.Source { return b.requeue.source() }
