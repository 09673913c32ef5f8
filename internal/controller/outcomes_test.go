package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

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
