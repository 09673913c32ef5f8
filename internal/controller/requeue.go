package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// requeuer schedules reconciles of a controller from outside it (the
// dispatcher's outcomes, receipts, Receivers' activity). Its queue only
// exists once the controller starts; keys added before are kept and
// queued then.
type requeuer struct {
	// priority orders these reconciles against the controller's others
	// when its queue is a priority queue (controller-runtime's default);
	// higher goes first, zero is an object event's.
	priority int

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	early []types.NamespacedName
}

// add schedules a reconcile of key after delay.
func (r *requeuer) add(key types.NamespacedName, delay time.Duration) {
	r.mu.Lock()
	q := r.queue
	if q == nil {
		r.early = append(r.early, key)
	}
	r.mu.Unlock()
	if q == nil {
		return
	}
	req := reconcile.Request{NamespacedName: key}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{After: delay, Priority: &r.priority}, req)
		return
	}
	q.AddAfter(req, delay)
}

// source is the controller's source of these reconciles.
func (r *requeuer) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		r.mu.Lock()
		r.queue = q
		early := r.early
		r.early = nil
		r.mu.Unlock()
		for _, key := range early {
			r.add(key, 0)
		}
		return nil
	})
}
