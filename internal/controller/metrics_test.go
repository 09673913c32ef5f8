package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func TestNamespaceLabelsAreBounded(t *testing.T) {
	l := newNamespaceLabels(2)
	for i, tc := range []struct{ ns, want string }{
		{"a", "a"}, {"b", "b"}, {"c", OtherNamespace}, {"a", "a"}, {"d", OtherNamespace}, {"b", "b"},
	} {
		if got := l.of(tc.ns); got != tc.want {
			t.Errorf("%d: of(%q) = %q, want %q", i, tc.ns, got, tc.want)
		}
	}
	if got := newNamespaceLabels(0).of("a"); got != OtherNamespace {
		t.Errorf("limit 0: of(a) = %q, want %q", got, OtherNamespace)
	}
}

func TestCountOverdue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(age, expiresAfter time.Duration, sendAt time.Duration, phase v1alpha1.NotificationPhase) v1alpha1.Notification {
		n := v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(now.Add(-age))}}
		n.Spec.ExpiresAfter = &metav1.Duration{Duration: expiresAfter}
		if sendAt != 0 {
			n.Spec.SendAt = &metav1.Time{Time: now.Add(sendAt)}
		}
		n.Status.Phase = phase
		return n
	}
	items := []v1alpha1.Notification{
		mk(2*time.Hour, time.Hour, 0, v1alpha1.PhasePending),                // overdue
		mk(2*time.Hour, time.Hour, 0, v1alpha1.PhaseExpired),                // finished
		mk(30*time.Minute, time.Hour, 0, v1alpha1.PhasePending),             // within expiry
		mk(2*time.Hour, time.Hour, 30*time.Minute, v1alpha1.PhaseScheduled), // expiry counts from sendAt
		mk(3*time.Hour, time.Hour, -2*time.Hour+time.Minute, ""),            // sendAt 1h59m ago, +1h: overdue
	}
	if got := countOverdue(items, now); got != 2 {
		t.Errorf("countOverdue = %d, want 2", got)
	}
}
