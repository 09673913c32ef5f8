package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// What the Notification reconciler remembers between reconciles. All of it
// can be lost: after a restart, status alone says what is left to do.

// inflightCheck is how long a job handed to the dispatcher is trusted to
// report its end before the reconciler submits it again: the dispatcher
// ignores a job it still holds, and takes back one it dropped unreported.
const inflightCheck = time.Minute

type inflightJob struct {
	// key is the dispatch queue it was submitted to.
	key, providerType string
	submitted         time.Time
}

// inflight is the set of jobs handed to the dispatcher whose end has not been
// recorded, so policy is not applied again to a delivery already on its way.
type inflight struct {
	mu   sync.Mutex
	jobs map[string]inflightJob
	// pruned is when entries of Notifications gone since were last dropped.
	pruned time.Time
}

func (f *inflight) add(id, key, providerType string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobs == nil {
		f.jobs = map[string]inflightJob{}
	}
	if now.Sub(f.pruned) > inflightCheck {
		// Entries whose end was never recorded (the Notification was
		// deleted) would otherwise stay forever.
		for id, j := range f.jobs {
			if now.Sub(j.submitted) > 10*inflightCheck {
				delete(f.jobs, id)
			}
		}
		f.pruned = now
	}
	f.jobs[id] = inflightJob{key: key, providerType: providerType, submitted: now}
}

// recheck reports whether the job is in flight and, if so, the queue it
// is in and when to look again.
func (f *inflight) recheck(id string, now time.Time) (key string, at time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	at = j.submitted.Add(inflightCheck)
	return j.key, at, ok && now.Before(at)
}

func (f *inflight) providerType(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		return j.providerType
	}
	return "unknown"
}

func (f *inflight) done(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, id)
}

// sendLog remembers when capped users (maxPerHour) were sent to, for
// policy's hourly cap. It lives in memory: after a restart the cap starts
// counting afresh (see docs/operations.md).
type sendLog struct {
	mu    sync.Mutex
	users map[string][]time.Time
}

func capped(u *v1alpha1.UserPreference) bool { return u != nil && u.Spec.MaxPerHour > 0 }

func (l *sendLog) add(ns, user string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = map[string][]time.Time{}
	}
	k := ns + "/" + user
	l.users[k] = append(trimHour(l.users[k], t), t)
}

func (l *sendLog) lastHour(ns, user string, now time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := ns + "/" + user
	ts := trimHour(l.users[k], now)
	if len(ts) == 0 {
		delete(l.users, k)
		return nil
	}
	l.users[k] = ts
	return append([]time.Time(nil), ts...)
}

func trimHour(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= time.Hour {
		i++
	}
	return ts[i:]
}

// lastWrite remembers, per Notification, the object as our last write left
// it and the resourceVersion it was written over. The informer cache
// catches up with our own writes a little later; a reconcile in between
// would compute from the older copy and fail its optimistic lock (or, on a
// finished one, label it twice).
type lastWrite struct {
	mu sync.Mutex
	m  map[types.NamespacedName]written
}

type written struct {
	from string
	obj  *v1alpha1.Notification
}

func (l *lastWrite) remember(from string, n *v1alpha1.Notification) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[types.NamespacedName]written{}
	}
	l.m[types.NamespacedName{Namespace: n.Namespace, Name: n.Name}] = written{from: from, obj: n.DeepCopy()}
}

// catchUp replaces n, read from the cache, with what we last wrote when n
// is the version that write replaced. Any other version (ours, or a
// newer one) makes the memory useless.
func (l *lastWrite) catchUp(key types.NamespacedName, n *v1alpha1.Notification) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	if !ok {
		return
	}
	if w.from == n.ResourceVersion && w.obj.UID == n.UID {
		w.obj.DeepCopyInto(n)
		return
	}
	delete(l.m, key)
}

func (l *lastWrite) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}
