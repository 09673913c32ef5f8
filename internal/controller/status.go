package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// statusWriter is the one path by which the simple kinds (Template,
// UserPreference, providers) write status: a merge patch when something
// changed, and an Event when the Ready condition changes.
type statusWriter struct {
	client.Client
	Events recorder.EventRecorder
	// quietFirstReady: an object Ready from its first status records no
	// Event, only later changes do. For UserPreferences, which come one
	// per user by the thousand: a Normal Event each would be an API write
	// and event-recorder memory per user for nothing a person reads.
	quietFirstReady bool
}

// write patches obj's status from before and emits an Event when Ready's
// status or reason differs between beforeConds and afterConds.
func (w statusWriter) write(ctx context.Context, obj client.Object, before client.Object, beforeStatus, afterStatus any, beforeConds, afterConds []metav1.Condition) error {
	if equality.Semantic.DeepEqual(beforeStatus, afterStatus) {
		return nil
	}
	// The optimistic lock keeps a concurrent writer (the pipeline records dead
	// devices on UserPreferences) from being overwritten: a conflict requeues.
	if err := w.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	w.readyEvent(obj, beforeConds, afterConds)
	return nil
}

// readyEvent records an Event when Ready (or a provider's Available)
// changes: Warning when it turned False.
func (w statusWriter) readyEvent(obj client.Object, beforeConds, afterConds []metav1.Condition) {
	if w.Events == nil {
		return
	}
	for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionAvailable} {
		old := meta.FindStatusCondition(beforeConds, typ)
		now := meta.FindStatusCondition(afterConds, typ)
		if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason) {
			continue
		}
		if old == nil && now.Status == metav1.ConditionTrue && (typ == v1alpha1.ConditionAvailable || w.quietFirstReady) {
			continue // a new provider is Available, a new user is Ready: nothing to tell
		}
		kind := corev1.EventTypeNormal
		if now.Status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		w.Events.Eventf(obj, nil, kind, now.Reason, "Reconcile", "%s", now.Message)
	}
}
