package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ledger"
	"github.com/herald-dev/herald/internal/render"
)

// TemplateReconciler reports whether every body of a Template parses.
type TemplateReconciler struct {
	statusWriter
}

// Reconcile sets Ready from render.Validate.
func (r *TemplateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var t v1alpha1.Template
	if err := r.Get(ctx, req.NamespacedName, &t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := t.DeepCopy()
	o := Outcome{Ready: true, Reason: v1alpha1.ReasonSucceeded, Message: "every body parses"}
	if err := render.Validate(&t.Spec); err != nil {
		// A template that does not parse needs a person to fix it.
		o = Outcome{Stalled: true, Reason: v1alpha1.ReasonInvalidTemplate, Message: truncate(err.Error(), 1024)}
	}
	t.Status.ObservedGeneration = t.Generation
	setConditions(&t.Status.Conditions, t.Generation, o)
	return ctrl.Result{}, r.write(ctx, &t, before, before.Status, t.Status, before.Status.Conditions, t.Status.Conditions)
}

// SetupWithManager registers the reconciler; status-only updates do not trigger it.
func (r *TemplateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Template{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("template").Complete(r)
}

// truncate keeps a condition message within the API's 32 KiB and a reader's patience.
var truncate = ledger.Cut
