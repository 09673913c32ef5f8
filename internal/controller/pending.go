package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// pending holds, per Notification, what waits for its next status write
// (the dispatcher's outcomes, providers' receipts), and counts what a
// reconcile has taken and not yet settled: a graceful stop waits until both
// are empty.
type pending[T any] struct {
	mu    sync.Mutex
	items map[types.NamespacedName][]T
	taken int
}

// add appends items for key and reports whether key held none before.
func (p *pending[T]) add(key types.NamespacedName, items ...T) (first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.items == nil {
		p.items = map[types.NamespacedName][]T{}
	}
	first = len(p.items[key]) == 0
	p.items[key] = append(p.items[key], items...)
	return first
}

// take returns and forgets what is held for key. Unless it is empty, the
// caller settles it with done or putBack.
func (p *pending[T]) take(key types.NamespacedName) []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	items := p.items[key]
	delete(p.items, key)
	if len(items) > 0 {
		p.taken++
	}
	return items
}

// done settles what take returned: written, or never to be.
func (p *pending[T]) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.taken--
}

// putBack settles what take returned by holding back (all or part of it)
// again, ahead of what arrived since.
func (p *pending[T]) putBack(key types.NamespacedName, back []T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.taken--
	if len(back) > 0 {
		p.items[key] = append(back, p.items[key]...)
	}
}

// drop forgets what is held for key without a take.
func (p *pending[T]) drop(key types.NamespacedName) []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	items := p.items[key]
	delete(p.items, key)
	return items
}

// len is the number of Notifications with something held or being written.
func (p *pending[T]) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items) + p.taken
}
