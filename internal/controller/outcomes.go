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
	// Recorded is told of every outcome that is written to status, or that
	// never will be (its Notification is gone): the dispatcher's
	// Recorded, which frees the outcome's place among unrecorded sends.
	Recorded func(dispatch.Outcome)

	mu      sync.Mutex
	pending map[types.NamespacedName]map[string][]dispatch.Outcome // by job ID
	// taken counts what Take handed out and Done or Return have not yet
	// settled: outcomes on their way to status.
	taken   int
	requeue requeuer
}

// DefaultRetryFlushDelay is Outcomes.RetryFlushDelay's default.
const DefaultRetryFlushDelay = 5 * time.Second

// NewOutcomes returns an empty buffer.
func NewOutcomes(flushDelay time.Duration) *Outcomes {
	return &Outcomes{FlushDelay: flushDelay, RetryFlushDelay: DefaultRetryFlushDelay,
		pending: map[types.NamespacedName]map[string][]dispatch.Outcome{}}
}

// Report is the dispatcher's Reporter.
func (b *Outcomes) Report(o dispatch.Outcome) {
	key := types.NamespacedName{Namespace: o.Notification.Namespace, Name: o.Notification.Name}
	b.mu.Lock()
	m := b.pending[key]
	if m == nil {
		m = map[string][]dispatch.Outcome{}
		b.pending[key] = m
	}
	m[o.JobID] = append(m[o.JobID], o)
	b.mu.Unlock()
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

// Take returns the outcomes buffered for a Notification, by job ID, and
// forgets them. The caller must fold them into status or Return them.
func (b *Outcomes) Take(key types.NamespacedName) map[string][]dispatch.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.pending[key]
	delete(b.pending, key)
	if m != nil {
		b.taken++
	}
	return m
}

// Return puts outcomes back after a failed status write, ahead of newer ones.
func (b *Outcomes) Return(key types.NamespacedName, m map[string][]dispatch.Outcome) {
	if m == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taken--
	if len(m) == 0 {
		return
	}
	cur := b.pending[key]
	if cur == nil {
		b.pending[key] = m
		return
	}
	for id, os := range m {
		cur[id] = append(os, cur[id]...)
	}
}

// Len is the number of Notifications with outcomes not yet written,
// buffered or being written.
func (b *Outcomes) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending) + b.taken
}

// Forget drops what is buffered for a Notification that is gone.
func (b *Outcomes) Forget(key types.NamespacedName) {
	b.mu.Lock()
	m := b.pending[key]
	delete(b.pending, key)
	b.mu.Unlock()
	b.recorded(m)
}

// Done reports outcomes taken with Take as recorded (or never to be).
func (b *Outcomes) Done(m map[string][]dispatch.Outcome) {
	if m != nil {
		b.mu.Lock()
		b.taken--
		b.mu.Unlock()
	}
	b.recorded(m)
}

func (b *Outcomes) recorded(m map[string][]dispatch.Outcome) {
	if b.Recorded == nil {
		return
	}
	for _, os := range m {
		for _, o := range os {
			b.Recorded(o)
		}
	}
}

// Source feeds reconcile requests for reported outcomes to the controller.
func (b *Outcomes) Source() source.Source { return b.requeue.source() }
