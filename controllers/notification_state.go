package controllers

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// What the Notification reconciler remembers between reconciles. All of it
// can be lost: after a restart, status alone says what is left to do.

// inflightCheck is how often a Notification with deliveries in the
// dispatcher looks again, in case an outcome was lost (its queue removed).
const inflightCheck = time.Minute

// inflightLimit is how long a submitted job is trusted to report before the
// reconciler submits it again (the dispatcher ignores it if it still holds it).
const inflightLimit = 10 * time.Minute

type inflightJob struct {
	provider, providerType string
	deadline, submitted    time.Time
}

// inflight is the set of jobs handed to the dispatcher whose end has not been
// recorded, so policy is not applied again to a delivery already on its way.
type inflight struct {
	mu   sync.Mutex
	jobs map[string]inflightJob
}

func (f *inflight) add(id, provider, providerType string, deadline, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobs == nil {
		f.jobs = map[string]inflightJob{}
	}
	f.jobs[id] = inflightJob{provider: provider, providerType: providerType, deadline: deadline, submitted: now}
}

func (f *inflight) has(id string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	return ok && now.Sub(j.submitted) < inflightLimit && (j.deadline.IsZero() || now.Before(j.deadline.Add(time.Minute)))
}

func (f *inflight) provider(id, fallback string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		return j.provider
	}
	return fallback
}

func (f *inflight) providerType(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobs[id].providerType
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

// lastWrite remembers a hash of the status last written per Notification.
// When the cache lags behind our own write, the reconcile computes the same
// status again from the stale copy; this stops it writing that twice.
type lastWrite struct {
	mu sync.Mutex
	m  map[types.NamespacedName][32]byte
}

func statusHash(n *v1alpha1.Notification) [32]byte {
	b, _ := json.Marshal(n.Status)
	return sha256.Sum256(b)
}

func (l *lastWrite) same(key types.NamespacedName, n *v1alpha1.Notification) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.m[key]
	return ok && h == statusHash(n)
}

func (l *lastWrite) remember(key types.NamespacedName, n *v1alpha1.Notification) {
	h := statusHash(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[types.NamespacedName][32]byte{}
	}
	l.m[key] = h
}

func (l *lastWrite) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}
