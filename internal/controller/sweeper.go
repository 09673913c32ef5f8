package controller

import (
	"container/heap"
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Sweeper deletes finished Notifications when their TTL runs out. Finished
// Notifications are not in the cache, so it keeps its own schedule: the
// reconciler adds each one it finishes, and a scan of the API when the
// sweeper starts (and then every Rescan) finds those finished elsewhere:
// before a restart, or by another leader.
type Sweeper struct {
	Client    client.Client
	APIReader client.Reader
	Clock     clock.Clock
	// DefaultTTL applies to Notifications without ttlSecondsAfterFinished;
	// 0 keeps them.
	DefaultTTL time.Duration
	// Rescan is how often the API is scanned (default 1h). A scan reads
	// every finished Notification in pages, so it is not frequent: what
	// this process finishes is scheduled as it finishes.
	Rescan time.Duration

	mu   sync.Mutex
	due  dueHeap
	wake chan struct{}
}

// Schedule deletes key at t.
func (s *Sweeper) Schedule(key types.NamespacedName, t time.Time) {
	s.mu.Lock()
	heap.Push(&s.due, dueItem{key: key, at: t})
	s.mu.Unlock()
	select {
	case s.wakeCh() <- struct{}{}:
	default:
	}
}

func (s *Sweeper) wakeCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return s.wake
}

// Start runs until ctx ends; it needs the leader lease.
func (s *Sweeper) Start(ctx context.Context) error {
	rescan := s.Rescan
	if rescan <= 0 {
		rescan = time.Hour
	}
	nextScan := s.Clock.Now()
	wake := s.wakeCh()
	for {
		now := s.Clock.Now()
		if !now.Before(nextScan) {
			if err := s.scan(ctx); err != nil {
				log.FromContext(ctx).Error(err, "scanning finished Notifications")
			}
			nextScan = now.Add(rescan)
		}
		s.deleteDue(ctx, now)
		wait := nextScan.Sub(now)
		s.mu.Lock()
		if len(s.due) > 0 {
			wait = min(wait, s.due[0].at.Sub(now))
		}
		s.mu.Unlock()
		t := s.Clock.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C():
		}
	}
}

func (s *Sweeper) deleteDue(ctx context.Context, now time.Time) {
	for {
		s.mu.Lock()
		if len(s.due) == 0 || s.due[0].at.After(now) {
			s.mu.Unlock()
			return
		}
		it := heap.Pop(&s.due).(dueItem)
		s.mu.Unlock()
		n := &metav1.PartialObjectMetadata{}
		n.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Notification"))
		n.SetNamespace(it.key.Namespace)
		n.SetName(it.key.Name)
		if err := s.APIReader.Get(ctx, it.key, n); err != nil {
			if !apierrors.IsNotFound(err) {
				log.FromContext(ctx).Error(err, "reading expired Notification", "notification", it.key)
			}
			continue
		}
		// Children carry an owner reference, but a control plane without the
		// garbage collector (make dev, tests) would keep them: delete them
		// too, and only those this Notification controls.
		if err := s.deleteChildren(ctx, n); err != nil {
			log.FromContext(ctx).Error(err, "deleting children of an expired Notification", "notification", it.key)
		}
		if err := s.Client.Delete(ctx, n, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &n.UID}); err != nil && !apierrors.IsNotFound(err) {
			log.FromContext(ctx).Error(err, "deleting expired Notification", "notification", it.key)
		}
	}
}

func (s *Sweeper) deleteChildren(ctx context.Context, parent *metav1.PartialObjectMetadata) error {
	kids := &metav1.PartialObjectMetadataList{}
	kids.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("NotificationList"))
	if err := s.APIReader.List(ctx, kids, client.InNamespace(parent.Namespace), client.MatchingLabels{v1alpha1.LabelParent: parentLabel(parent)}); err != nil {
		return err
	}
	for i := range kids.Items {
		k := &kids.Items[i]
		if !metav1.IsControlledBy(k, parent) {
			continue
		}
		if err := s.Client.Delete(ctx, k, client.Preconditions{UID: &k.UID}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// scan schedules every finished Notification with a TTL. Only the phase is
// selectable, so it reads whole objects, a page at a time, and keeps only
// the key and the time.
func (s *Sweeper) scan(ctx context.Context) error {
	finished, err := fields.ParseSelector(v1alpha1.FinishedSelector())
	if err != nil {
		return err
	}
	opts := []client.ListOption{client.MatchingFieldsSelector{Selector: finished}, client.Limit(100)}
	for {
		var list v1alpha1.NotificationList
		if err := s.APIReader.List(ctx, &list, opts...); err != nil {
			return err
		}
		s.mu.Lock()
		for i := range list.Items {
			n := &list.Items[i]
			if at, ok := deleteAt(n, s.DefaultTTL); ok {
				heap.Push(&s.due, dueItem{key: client.ObjectKeyFromObject(n), at: at})
			}
		}
		s.mu.Unlock()
		if list.Continue == "" {
			return nil
		}
		opts = append(opts[:2], client.Continue(list.Continue))
	}
}

// deleteAt is when a finished Notification is deleted; ok is false when it
// is kept. An explicit ttlSecondsAfterFinished of 0 deletes it at once, as
// for a Job; the default of 0 keeps it. A child goes with its parent: on
// its own TTL it could go before the parent has counted it.
func deleteAt(n *v1alpha1.Notification, defaultTTL time.Duration) (time.Time, bool) {
	if isChild(n) || n.Status.CompletionTime == nil {
		return time.Time{}, false
	}
	ttl := defaultTTL
	if n.Spec.TTLSecondsAfterFinished != nil {
		ttl = time.Duration(*n.Spec.TTLSecondsAfterFinished) * time.Second
	} else if ttl <= 0 {
		return time.Time{}, false
	}
	return n.Status.CompletionTime.Add(ttl), true
}

type dueItem struct {
	key types.NamespacedName
	at  time.Time
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
