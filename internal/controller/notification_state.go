package controller

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// inflightCheck is how long a job handed to the dispatcher is trusted before
// the reconciler submits it again, which the dispatcher ignores while it
// holds the job. The dispatcher reports every job it drops, so this is only
// a safety net.
const inflightCheck = 5 * time.Minute

// memory is everything the Notification reconciler remembers between
// reconciles, behind one lock. All of it can be lost: after a restart,
// status alone says what is left to do, so nothing here is a source of
// truth, only a way to skip work or a race.
//
//   - jobs: deliveries handed to the dispatcher whose end is not recorded
//     yet, so policy is not applied again to one already on its way.
//   - sends: when users with a maxPerHour cap were last sent to; a slot is
//     reserved atomically, so two workers cannot both take the last one.
//     After a restart the count starts afresh (docs/operations.md).
//   - written: per Notification, the object as our last status write left
//     it and the resourceVersion that write replaced. The informer cache
//     catches up a little later; a reconcile in between goes on from what
//     we wrote instead of failing its optimistic lock on the older copy.
//   - armed: AtMostOnce deliveries this process recorded Sending and is
//     about to send. Sending in status without this memory means a
//     process stopped mid-send: the delivery becomes Unknown.
//   - children: what each finished child of a fan-out reported, by parent
//     and child name: written down when this process finishes the child,
//     or when the parent reads a finished child (out of the cache) from the
//     API, so it does so at most once. Dropped when the parent finishes or
//     is gone.
type memory struct {
	mu       sync.Mutex
	jobs     map[string]inflightJob
	armed    map[string]struct{}
	pruned   time.Time
	sends    map[string][]time.Time
	written  map[types.NamespacedName]written
	children map[types.NamespacedName]childrenOf
}

// childrenOf is what the finished children of one parent reported.
type childrenOf struct {
	parent types.UID
	kids   map[string]childSummary
}

type inflightJob struct {
	providerType string
	submitted    time.Time
}

type written struct {
	from string
	obj  *v1alpha1.Notification
}

func (m *memory) init() {
	if m.jobs == nil {
		m.jobs = map[string]inflightJob{}
		m.armed = map[string]struct{}{}
		m.sends = map[string][]time.Time{}
		m.written = map[types.NamespacedName]written{}
		m.children = map[types.NamespacedName]childrenOf{}
	}
}

// submitted records a job handed to the dispatcher.
func (m *memory) submitted(id, providerType string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if now.Sub(m.pruned) > inflightCheck {
		// Entries whose end was never recorded (the Notification was
		// deleted) would otherwise stay forever.
		for id, j := range m.jobs {
			if now.Sub(j.submitted) > 10*inflightCheck {
				delete(m.jobs, id)
			}
		}
		m.pruned = now
	}
	m.jobs[id] = inflightJob{providerType: providerType, submitted: now}
	delete(m.armed, id)
}

func (m *memory) arm(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	m.armed[id] = struct{}{}
}

func (m *memory) isArmed(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.armed[id]
	return ok
}

// inflight reports whether the job is in flight and, if so, when to look
// again.
func (m *memory) inflight(id string, now time.Time) (at time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	at = j.submitted.Add(inflightCheck)
	return at, ok && now.Before(at)
}

// ended forgets a job whose end is recorded (or that must be planned
// again) and returns the type of the provider it went to.
func (m *memory) ended(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	delete(m.jobs, id)
	delete(m.armed, id)
	if !ok {
		return "unknown"
	}
	return j.providerType
}

func capped(u *v1alpha1.UserPreference) bool { return u != nil && u.Spec.MaxPerHour > 0 }

// sentInLastHour is what policy's hourly cap counts.
func (m *memory) sentInLastHour(ns, user string, now time.Time) []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	k := ns + "/" + user
	ts := trimHour(m.sends[k], now)
	if len(ts) == 0 {
		delete(m.sends, k)
		return nil
	}
	m.sends[k] = ts
	return append([]time.Time(nil), ts...)
}

// reserveSend takes one of the user's limit sends in the hour before now,
// atomically. When none is left it returns false and when one frees.
func (m *memory) reserveSend(ns, user string, limit int, now time.Time) (bool, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	k := ns + "/" + user
	ts := trimHour(m.sends[k], now)
	if len(ts) >= limit {
		m.sends[k] = ts
		return false, ts[len(ts)-limit].Add(time.Hour)
	}
	m.sends[k] = append(ts, now)
	return true, time.Time{}
}

// releaseSend gives back a slot reserved at now that was not used.
func (m *memory) releaseSend(ns, user string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := ns + "/" + user
	ts := m.sends[k]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(now) {
			m.sends[k] = append(ts[:i:i], ts[i+1:]...)
			return
		}
	}
}

func trimHour(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= time.Hour {
		i++
	}
	return ts[i:]
}

// wrote remembers our status write of n, made over resourceVersion from.
func (m *memory) wrote(from string, n *v1alpha1.Notification) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	m.written[types.NamespacedName{Namespace: n.Namespace, Name: n.Name}] = written{from: from, obj: n.DeepCopy()}
}

// catchUp replaces n, read from the cache, with what we last wrote when n
// is the version that write replaced. Any other version (ours, or a
// newer one) makes the memory useless.
func (m *memory) catchUp(key types.NamespacedName, n *v1alpha1.Notification) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.written[key]
	if !ok {
		return
	}
	if w.from == n.ResourceVersion && w.obj.UID == n.UID {
		w.obj.DeepCopyInto(n)
		return
	}
	delete(m.written, key)
}

// gone forgets a Notification that left the cache.
func (m *memory) gone(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.written, key)
	delete(m.children, key)
}

// finishedChild returns what the parent's finished child (by name)
// reported, if remembered.
func (m *memory) finishedChild(parent metav1.Object, child string) (childSummary, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	of, ok := m.children[keyOf(parent)]
	if !ok || of.parent != parent.GetUID() {
		return childSummary{}, false
	}
	cs, ok := of.kids[child]
	return cs, ok
}

// rememberChild writes down what the finished child (by name) of the
// parent (namespace, name and uid) reported.
func (m *memory) rememberChild(parent types.NamespacedName, parentUID types.UID, child string, cs childSummary) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	of := m.children[parent]
	if of.parent != parentUID || of.kids == nil {
		of = childrenOf{parent: parentUID, kids: map[string]childSummary{}}
		m.children[parent] = of
	}
	of.kids[child] = cs
}

func (m *memory) forgetChildren(parent metav1.Object) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.children, keyOf(parent))
}

func keyOf(o metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}
