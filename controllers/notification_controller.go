package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// NotificationReconciler plans a Notification's deliveries and records them.
type NotificationReconciler struct {
	client.Client
	Config
}

// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications/finalizers,verbs=update
// +kubebuilder:rbac:groups=notify.herald.dev,resources=templates;userpreferences;channelproviders;clusterchannelproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=templates/status;userpreferences/status;channelproviders/status;clusterchannelproviders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile records that the Notification was seen. Delivery is the pipeline's job.
func (r *NotificationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var n v1alpha1.Notification
	if err := r.Get(ctx, req.NamespacedName, &n); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := n.DeepCopy()
	if n.Status.Phase == "" {
		n.Status.Phase = v1alpha1.PhasePending
	}
	n.Status.ObservedGeneration = n.Generation
	setConditions(&n.Status.Conditions, n.Generation, Outcome{Reason: v1alpha1.ReasonProgressing, Message: "waiting to be planned"})
	if equality.Semantic.DeepEqual(before.Status, n.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Status().Patch(ctx, &n, client.MergeFrom(before))
}

// SetupWithManager registers the reconciler.
func (r *NotificationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&v1alpha1.Notification{}).Named("notification").Complete(r)
}
