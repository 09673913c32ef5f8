package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// writeSlots bounds the reconciles writing a Notification's status at once,
// so reconciles that write nothing (a Notification just created, planning
// and handing its sends to the dispatcher) always find a worker, however
// slow the API server is with status writes. A reconcile that finds no slot
// gives its outcomes back and returns; when a slot frees, the Notification
// that waited longest is queued again (wake). Nothing spins.
type writeSlots struct {
	mu      sync.Mutex
	free    int
	waiting []types.NamespacedName
	queued  map[types.NamespacedName]bool
	wake    func(types.NamespacedName)
}

// newWriteSlots returns n slots (at least one); wake queues a Notification
// that waited for one.
func newWriteSlots(n int, wake func(types.NamespacedName)) *writeSlots {
	return &writeSlots{free: max(1, n), queued: map[types.NamespacedName]bool{}, wake: wake}
}

// take takes a slot for key, or notes that key waits for one.
func (s *writeSlots) take(key types.NamespacedName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 {
		s.free--
		return true
	}
	if !s.queued[key] {
		s.queued[key] = true
		s.waiting = append(s.waiting, key)
	}
	return false
}

// release gives a slot back and wakes the Notification that waited longest.
func (s *writeSlots) release() {
	s.mu.Lock()
	s.free++
	var next types.NamespacedName
	woken := len(s.waiting) > 0
	if woken {
		next = s.waiting[0]
		s.waiting = s.waiting[1:]
		delete(s.queued, next)
	}
	s.mu.Unlock()
	if woken {
		s.wake(next)
	}
}
