package soak

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/hack/bench"
)

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := bench.CreateNamespace(context.Background(), plane.Client, name); err != nil {
		t.Fatal(err)
	}
	// The control plane has no namespace controller to empty a deleted
	// namespace, and every manager caches UserPreferences cluster-wide:
	// without this, a later test's manager would hold the 10,000 users of
	// each earlier one (the flood's RSS went from 245 to 388 MiB).
	t.Cleanup(func() {
		ctx := context.Background()
		for _, obj := range []client.Object{&v1alpha1.UserPreference{}, &v1alpha1.Notification{}} {
			if err := plane.Client.DeleteAllOf(ctx, obj, client.InNamespace(name)); err != nil {
				t.Errorf("emptying namespace %s: %v", name, err)
			}
		}
	})
	return name
}

// waitFinished polls the API server until the Notification finishes.
func waitFinished(t *testing.T, ns, name string, timeout time.Duration) *v1alpha1.Notification {
	t.Helper()
	n := &v1alpha1.Notification{}
	err := bench.Poll(context.Background(), timeout, 250*time.Millisecond, func() error {
		if err := plane.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, n); err != nil {
			return err
		}
		if !n.Status.Phase.Finished() {
			return fmt.Errorf("%s is %s: %+v", name, n.Status.Phase, n.Status.Summary)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nonTerminal lists the deliveries of every Notification in ns that are
// not in a terminal state, and the Notifications not finished.
func nonTerminal(t *testing.T, ns string) (deliveries, notifications []string) {
	t.Helper()
	var list v1alpha1.NotificationList
	if err := plane.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if !n.Status.Phase.Finished() {
			notifications = append(notifications, fmt.Sprintf("%s (%s)", n.Name, n.Status.Phase))
		}
		for _, d := range n.Status.Deliveries {
			if !d.State.Terminal() {
				deliveries = append(deliveries, fmt.Sprintf("%s/%s: %s %s", n.Name, d.ID, d.State, d.Reason))
			}
		}
	}
	return deliveries, notifications
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func bytesContains(b, sub []byte) bool { return bytes.Contains(b, sub) }

// measure creates count Notifications (made by build from a name) at rate a
// second, waits until tracker has seen each finished, and returns their
// create → finished latencies.
func measure(t *testing.T, tracker *bench.Tracker, prefix string, count int, rate float64, build func(name string, i int) *v1alpha1.Notification) []time.Duration {
	t.Helper()
	ctx := context.Background()
	created := map[string]time.Time{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := range count {
		<-tick.C
		n := build(fmt.Sprintf("%s-%03d", prefix, i), i)
		created[n.Name] = time.Now()
		if err := plane.Client.Create(ctx, n); err != nil {
			t.Error(err)
			return nil
		}
	}
	if err := bench.Poll(ctx, 2*time.Minute, 20*time.Millisecond, func() error {
		for name := range created {
			if _, ok := tracker.Finished(name); !ok {
				return fmt.Errorf("%s not finished", name)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
		return nil
	}
	lat := make([]time.Duration, 0, len(created))
	for name, at := range created {
		s, _ := tracker.Finished(name)
		lat = append(lat, s.At.Sub(at))
	}
	return lat
}
