package controller

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/senders"
)

// A graceful stop waits on Len: outcomes a reconcile has taken and is still
// writing count until Done or Return settles them.
func TestOutcomesLenCountsWritesInProgress(t *testing.T) {
	b := NewOutcomes(0)
	key := types.NamespacedName{Namespace: "ns", Name: "n"}
	var recorded []string
	b.Recorded = func(o dispatch.Outcome) { recorded = append(recorded, o.JobID) }
	b.Report(dispatch.Outcome{JobID: "uid/a", Notification: senders.NotificationRef{Namespace: "ns", Name: "n"}, State: dispatch.Sent})
	steps := []struct {
		name string
		do   func()
		len  int
	}{
		{"buffered", func() {}, 1},
		{"taken, being written", func() { b.Return(key, b.Take(key)); b.Take(key) }, 1},
		{"written", func() { b.Done(map[string][]dispatch.Outcome{"uid/a": {{JobID: "uid/a", State: dispatch.Sent}}}) }, 0},
		{"nothing to take", func() { b.Done(b.Take(key)) }, 0},
	}
	for _, s := range steps {
		s.do()
		if got := b.Len(); got != s.len {
			t.Fatalf("%s: Len %d, want %d", s.name, got, s.len)
		}
	}
	if len(recorded) != 1 || recorded[0] != "uid/a" {
		t.Errorf("recorded %v, want [uid/a]", recorded)
	}
}

// Writing outcomes to status queues behind new work: with the controller's
// priority queue, a Notification just created (priority 0, as its create
// event adds it) is reconciled before one whose outcomes wait to be written,
// even when the outcomes came first.
func TestOutcomeFlushesQueueBehindNewWork(t *testing.T) {
	b, q := outcomesOnQueue(t, 0)
	b.Report(dispatch.Outcome{JobID: "uid/a", Notification: senders.NotificationRef{Namespace: "ns", Name: "flush"}, State: dispatch.Sent})
	zero := 0
	q.AddWithOpts(priorityqueue.AddOpts{Priority: &zero}, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "new"}})
	var order []string
	for range 2 {
		item, _, _ := q.GetWithPriority()
		order = append(order, item.Name)
		q.Done(item)
	}
	if order[0] != "new" || order[1] != "flush" {
		t.Errorf("reconciled %v, want the new Notification first", order)
	}
}

// With Hold, a Notification's outcomes wait for its other running jobs: the
// job that ends last (Retrying does not end a job; Dropped does) makes the
// flush due at once, so the deliveries share one status write.
func TestOutcomesHoldUntilTheLastJobEnds(t *testing.T) {
	b, q := outcomesOnQueue(t, time.Hour)
	key := types.NamespacedName{Namespace: "ns", Name: "n"}
	report := func(id string, s dispatch.State) {
		b.Report(dispatch.Outcome{JobID: id, Notification: senders.NotificationRef{Namespace: "ns", Name: "n"}, State: s})
	}
	b.Expect(key, 4)
	b.Expect(key, -1) // one of them was not taken after all
	steps := []struct {
		name  string
		do    func()
		ready int
	}{
		{"first of three sent", func() { report("uid/a", dispatch.Sent) }, 0},
		{"second retrying", func() { report("uid/b", dispatch.Retrying) }, 0},
		{"third dropped", func() { report("uid/c", dispatch.Dropped) }, 0},
		{"second sent at last", func() { report("uid/b", dispatch.Sent) }, 1},
	}
	for _, s := range steps {
		s.do()
		if got := q.Len(); got != s.ready {
			t.Fatalf("%s: %d reconciles due, want %d", s.name, got, s.ready)
		}
	}
	// Counting is over for key: a later outcome (replayed from the
	// journal, say) is not held.
	item, _, _ := q.GetWithPriority()
	q.Done(item)
	report("uid/d", dispatch.Sent)
	if q.Len() != 1 {
		t.Errorf("an outcome nobody expected was held")
	}
}

// Without Hold (no journal), outcomes wait only FlushDelay.
func TestOutcomesNoHoldWithoutIt(t *testing.T) {
	b, q := outcomesOnQueue(t, 0)
	b.Expect(types.NamespacedName{Namespace: "ns", Name: "n"}, 2)
	b.Report(dispatch.Outcome{JobID: "uid/a", Notification: senders.NotificationRef{Namespace: "ns", Name: "n"}, State: dispatch.Sent})
	if q.Len() != 1 {
		t.Errorf("the outcome waited for the other job without Hold")
	}
}

// outcomesOnQueue is an Outcomes buffer with no flush delay and the given
// hold, feeding a priority queue like the controller's.
func outcomesOnQueue(t *testing.T, hold time.Duration) (*Outcomes, priorityqueue.PriorityQueue[reconcile.Request]) {
	t.Helper()
	q := priorityqueue.New[reconcile.Request](t.Name())
	t.Cleanup(q.ShutDown)
	b := NewOutcomes(0)
	b.Hold = hold
	if err := b.Source().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	return b, q
}
