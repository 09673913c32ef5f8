package controller

import (
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
	// Recorded is told of every outcome that is written to status, or that
	// never will be (its Notification is gone): the dispatcher's
	// Recorded, which frees the outcome's place among unrecorded sends.
	Recorded func(dispatch.Outcome)

	pending pending[dispatch.Outcome]
	requeue requeuer
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

// Report is the dispatcher's Reporter.
func (b *Outcomes) Report(o dispatch.Outcome) {
	key := types.NamespacedName{Namespace: o.Notification.Namespace, Name: o.Notification.Name}
	b.pending.add(key, o)
	delay := b.FlushDelay
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

// Forget drops what is buffered for a Notification that is gone.
func (b *Outcomes) Forget(key types.NamespacedName) {
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
