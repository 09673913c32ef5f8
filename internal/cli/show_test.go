package cli

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// The summary says how many sends a provider's receipt confirmed, and
// only when one did.
func TestSummaryLineDelivered(t *testing.T) {
	n := &v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	n.Status.Phase = v1alpha1.PhaseSent
	n.Status.Summary = v1alpha1.DeliverySummary{Total: 3, Sent: 3}
	if got, want := summaryLine(n), "notification/n Sent: 3 sent, 0 failed, 0 suppressed, 0 pending of 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	n.Status.Summary.Delivered = 2
	if got, want := summaryLine(n), "notification/n Sent: 3 sent (2 delivered), 0 failed, 0 suppressed, 0 pending of 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
