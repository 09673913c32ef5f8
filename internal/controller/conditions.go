package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Outcome is what a reconcile concluded about an object, in kstatus terms.
// setConditions turns it into the Ready, Reconciling and Stalled conditions,
// so every kind reports them the same way.
type Outcome struct {
	// Ready: the object is what it should be.
	Ready bool
	// Stalled: no progress without a change by a person (ignored when Ready).
	Stalled bool
	Reason  string
	Message string
}

func setConditions(conds *[]metav1.Condition, gen int64, o Outcome) {
	set := func(t string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: s, ObservedGeneration: gen, Reason: o.Reason, Message: o.Message})
	}
	switch {
	case o.Ready:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	case o.Stalled:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	}
}
