package controller

import (
	"context"
	"testing"

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
	q := priorityqueue.New[reconcile.Request]("test-outcomes")
	defer q.ShutDown()
	b := NewOutcomes(0)
	if err := b.Source().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
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
