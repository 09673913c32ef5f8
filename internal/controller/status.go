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

func (w statusWriter) readyEvent(obj client.Object, beforeConds, afterConds []metav1.Condition) {
	if w.Events == nil {
		return
	}
	old := meta.FindStatusCondition(beforeConds, v1alpha1.ConditionReady)
	now := meta.FindStatusCondition(afterConds, v1alpha1.ConditionReady)
	if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason) {
		return
	}
	typ := corev1.EventTypeNormal
	if now.Status != metav1.ConditionTrue {
		typ = corev1.EventTypeWarning
	}
	w.Events.Eventf(obj, nil, typ, now.Reason, "Reconcile", "%s", now.Message)
}
