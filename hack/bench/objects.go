package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/scheme"
)

// CreateNamespace creates a namespace (it is fine if it exists).
func CreateNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// LogProvider creates the namespace's default provider for ch, of type log,
// and waits until it is Ready.
func LogProvider(ctx context.Context, c client.Client, ns string, ch v1alpha1.Channel, concurrency int32) error {
	p := &v1alpha1.ChannelProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "log-" + string(ch), Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{
			Type: v1alpha1.ProviderLog, Default: true, Concurrency: concurrency,
			Log: &v1alpha1.LogConfig{Channel: ch},
		},
	}
	if err := c.Create(ctx, p); err != nil {
		return err
	}
	return WaitProviderReady(ctx, c, p, time.Minute)
}

// WaitProviderReady waits for a ChannelProvider's Ready condition.
func WaitProviderReady(ctx context.Context, c client.Client, p *v1alpha1.ChannelProvider, timeout time.Duration) error {
	return Poll(ctx, timeout, 50*time.Millisecond, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady) {
			return fmt.Errorf("provider %s not Ready: %+v", p.Name, p.Status.Conditions)
		}
		return nil
	})
}

// Poll calls f every interval until it returns nil or timeout passes.
func Poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// UserEmail is the address of the i-th generated user.
func UserEmail(prefix string, i int) string { return fmt.Sprintf("%s-%06d@example.com", prefix, i) }

// CreateUsers creates n UserPreferences named <prefix>-NNNNNN with an email
// address and the label group=<prefix>, with workers clients in parallel.
func CreateUsers(ctx context.Context, c client.Client, ns, prefix string, n, workers int) error {
	return Parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		u := &v1alpha1.UserPreference{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%06d", prefix, i), Namespace: ns, Labels: map[string]string{"group": prefix}},
			Spec:       v1alpha1.UserPreferenceSpec{Email: UserEmail(prefix, i)},
		}
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	})
}

// Parallel runs f for 0..n-1 on workers goroutines and returns the first error.
func Parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
loop:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	return first
}

// EmailNotification is a single-recipient inline email Notification.
func EmailNotification(ns, name, to string) *v1alpha1.Notification {
	return &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content:    &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Build {{ .Params.build }} failed", Text: "Hi {{ .Recipient.Name }}, build {{ .Params.build }} failed."}},
			Params:     JSON(`{"build": "1234"}`),
			Recipients: []v1alpha1.Recipient{{Email: to}},
		},
	}
}

// Tracker watches the Notifications of a namespace and records when each
// was first seen finished. It leaves out fan-out children (their parent's
// phase covers them): decoding each of their status writes took CPU the
// system under test shares.
type Tracker struct {
	mu       sync.Mutex
	finished map[string]Seen
	changed  chan struct{}
}

// Seen is a Notification's first finished state.
type Seen struct {
	At    time.Time
	Phase v1alpha1.NotificationPhase
}

// Track starts watching ns until ctx ends; the watch is re-established
// (after a fresh list) when the API server closes it.
func Track(ctx context.Context, cfg *rest.Config, ns string) (*Tracker, error) {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, err
	}
	t := &Tracker{finished: map[string]Seen{}, changed: make(chan struct{}, 1)}
	started := make(chan error, 1)
	go t.run(ctx, wc, ns, started)
	return t, <-started
}

func (t *Tracker) run(ctx context.Context, wc client.WithWatch, ns string, started chan<- error) {
	first := true
	noChildren, _ := labels.NewRequirement(v1alpha1.LabelParent, selection.DoesNotExist, nil)
	topLevel := client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*noChildren)}
	for ctx.Err() == nil {
		var list v1alpha1.NotificationList
		err := wc.List(ctx, &list, client.InNamespace(ns), topLevel)
		var w watch.Interface
		if err == nil {
			for i := range list.Items {
				t.observe(&list.Items[i])
			}
			w, err = wc.Watch(ctx, &v1alpha1.NotificationList{}, client.InNamespace(ns), topLevel, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		}
		if first {
			started <- err
			first = false
			if err != nil {
				return
			}
		}
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			if n, ok := ev.Object.(*v1alpha1.Notification); ok && ev.Type != watch.Deleted {
				t.observe(n)
			}
		}
		w.Stop()
	}
}

func (t *Tracker) observe(n *v1alpha1.Notification) {
	if !n.Status.Phase.Finished() {
		return
	}
	now := time.Now()
	t.mu.Lock()
	if _, ok := t.finished[n.Name]; !ok {
		t.finished[n.Name] = Seen{At: now, Phase: n.Status.Phase}
	}
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Finished returns when name was first seen finished.
func (t *Tracker) Finished(name string) (Seen, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.finished[name]
	return s, ok
}

// Count is how many Notifications were seen finished.
func (t *Tracker) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.finished)
}

// WaitCount waits until at least n Notifications finished, or timeout.
func (t *Tracker) WaitCount(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if c := t.Count(); c >= n {
			return nil
		}
		select {
		case <-t.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			return fmt.Errorf("%d of %d Notifications finished after %v", t.Count(), n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitUsersReady waits until n UserPreferences in ns carry a Ready
// condition: the manager has seen them all, so what follows is not
// measured against its first sight of the users.
func WaitUsersReady(ctx context.Context, c client.Client, ns string, n int, timeout time.Duration) error {
	return Poll(ctx, timeout, 500*time.Millisecond, func() error {
		var list v1alpha1.UserPreferenceList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, u := range list.Items {
			if meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady) != nil {
				ready++
			}
		}
		if ready < n {
			return fmt.Errorf("%d of %d UserPreferences reconciled", ready, n)
		}
		return nil
	})
}
