package controller

import (
	"context"
	"errors"
	"slices"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
)

// UserPreferenceReconciler validates what CEL cannot and forgets what
// providers taught us about addresses the user has since changed.
type UserPreferenceReconciler struct {
	statusWriter
}

// Reconcile sets Ready from policy.ValidatePreference and prunes stale
// dead-device and unsubscribe records.
func (r *UserPreferenceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var u v1alpha1.UserPreference
	if err := r.Get(ctx, req.NamespacedName, &u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := u.DeepCopy()
	o := Outcome{Ready: true, Reason: v1alpha1.ReasonSucceeded, Message: "preferences are valid"}
	if err := policy.ValidatePreference(&u.Spec); err != nil {
		o = Outcome{Stalled: true, Reason: v1alpha1.ReasonInvalidSpec, Message: truncate(err.Error(), 1024)}
		if fe := (*policy.FieldError)(nil); errors.As(err, &fe) {
			o.Reason = fe.Reason
		}
	}
	pruneLearned(&u)
	u.Status.ObservedGeneration = u.Generation
	setConditions(&u.Status.Conditions, u.Generation, o)
	return ctrl.Result{}, r.write(ctx, &u, before, before.Status, u.Status, before.Status.Conditions, u.Status.Conditions)
}

// pruneLearned drops dead devices whose token is no longer in spec (a new
// token for the device is a new install, alive until the service says
// otherwise) and unsubscribes for a phone or email the user has changed.
func pruneLearned(u *v1alpha1.UserPreference) {
	tokens := map[string]bool{}
	for _, d := range u.Spec.Devices {
		tokens[policy.HashToken(d.Token)] = true
	}
	u.Status.DeadDevices = slices.DeleteFunc(u.Status.DeadDevices, func(d v1alpha1.DeadDevice) bool { return !tokens[d.TokenHash] })
	current := map[string]bool{}
	if u.Spec.Phone != "" {
		current[policy.HashToken(u.Spec.Phone)] = true
	}
	if u.Spec.Email != "" {
		current[policy.HashToken(u.Spec.Email)] = true
	}
	u.Status.Unsubscribed = slices.DeleteFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool { return !current[a.AddressHash] })
	if len(u.Status.DeadDevices) == 0 {
		u.Status.DeadDevices = nil
	}
	if len(u.Status.Unsubscribed) == 0 {
		u.Status.Unsubscribed = nil
	}
}

// SetupWithManager registers the reconciler; status-only updates do not trigger it.
func (r *UserPreferenceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.UserPreference{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("userpreference").Complete(r)
}
