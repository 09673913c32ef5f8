package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/ledger"
)

// +kubebuilder:rbac:groups=notify.herald.dev,resources=receivers,verbs=get;list;watch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=receivers/status,verbs=get;update;patch

// ReceiverReconciler reports a Receiver's status: Ready when its Secret has
// the token, the path (and URL) to send events to, and the counts of
// events and Notifications. Every replica receives events, so every
// replica runs it and adds its own counts (under an optimistic lock).
type ReceiverReconciler struct {
	statusWriter
	// Secrets reads Secrets straight from the API server (see providerReconciler.secrets).
	Secrets   client.Reader
	PublicURL string
	Activity  *receiverActivity
	Clock     clock.PassiveClock
}

// receiverNotReadyWait is how often a Receiver whose Secret is missing looks again.
const receiverNotReadyWait = 10 * time.Second

// Reconcile computes the Receiver's status and writes it in one patch.
func (r *ReceiverReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rcv v1alpha1.Receiver
	if err := r.Get(ctx, req.NamespacedName, &rcv); err != nil {
		if apierrors.IsNotFound(err) {
			r.Activity.take(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := rcv.DeepCopy()
	st := &rcv.Status
	st.ObservedGeneration = rcv.Generation
	st.WebhookPath = inbound.ReceiverPath(rcv.Namespace, rcv.Name)
	st.URL = inbound.JoinURL(r.PublicURL, st.WebhookPath)
	o, err := r.check(ctx, &rcv)
	if err != nil {
		return ctrl.Result{}, err
	}
	setConditions(&st.Conditions, rcv.Generation, o)
	delta := r.Activity.take(req.NamespacedName)
	delta.applyTo(st)
	if err := r.write(ctx, &rcv, before, before.Status, rcv.Status, before.Status.Conditions, st.Conditions); err != nil {
		r.Activity.putBack(req.NamespacedName, delta)
		return ctrl.Result{}, err
	}
	if !o.Ready {
		return ctrl.Result{RequeueAfter: receiverNotReadyWait}, nil
	}
	return ctrl.Result{}, nil
}

// check decides Ready: the Secret and its token exist.
func (r *ReceiverReconciler) check(ctx context.Context, rcv *v1alpha1.Receiver) (Outcome, error) {
	var s corev1.Secret
	ref := rcv.Namespace + "/" + rcv.Spec.SecretRef.Name
	if err := r.Secrets.Get(ctx, client.ObjectKey{Namespace: rcv.Namespace, Name: rcv.Spec.SecretRef.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return Outcome{Reason: v1alpha1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (spec.secretRef) not found; requests are refused until it exists", ref)}, nil
		}
		return Outcome{}, err
	}
	if len(s.Data[v1alpha1.ReceiverSecretKey]) == 0 {
		return Outcome{Stalled: true, Reason: v1alpha1.ReasonSecretKeyMissing,
			Message: fmt.Sprintf("Secret %q (spec.secretRef) has no key %q", ref, v1alpha1.ReceiverSecretKey)}, nil
	}
	where := rcv.Status.URL
	if where == "" {
		where = "path " + rcv.Status.WebhookPath + " of the inbound server"
	}
	return Outcome{Ready: true, Reason: v1alpha1.ReasonReceiving, Message: fmt.Sprintf("%s events are received at %s", rcv.Spec.Type, where)}, nil
}

// SetupWithManager registers the reconciler on every replica.
func (r *ReceiverReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Receiver{}).
		WatchesRawSource(r.Activity.requeue.source()).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Named("receiver").
		Complete(r)
}

// receiverActivity adds up, per Receiver, what its requests came to until
// the reconciler writes it: a burst of events costs one status write.
type receiverActivity struct {
	flushDelay time.Duration
	clock      clock.PassiveClock

	mu      sync.Mutex
	pending map[types.NamespacedName]activityDelta
	requeue requeuer
}

type activityDelta struct {
	events, created  int64
	last             time.Time
	lastNotification string
	lastError        string
}

func (d activityDelta) applyTo(st *v1alpha1.ReceiverStatus) {
	if d.events == 0 {
		return
	}
	st.EventsReceived += d.events
	st.NotificationsCreated += d.created
	t := metav1.NewTime(d.last)
	st.LastEventTime = &t
	if d.lastNotification != "" {
		st.LastNotification = d.lastNotification
	}
	if d.lastError != "" {
		st.LastError = ledger.Cut(d.lastError, 1024)
	}
}

func newReceiverActivity(flushDelay time.Duration, c clock.PassiveClock) *receiverActivity {
	return &receiverActivity{flushDelay: flushDelay, clock: c, pending: map[types.NamespacedName]activityDelta{}}
}

// record is inbound.Receivers.Record.
func (a *receiverActivity) record(ns, name string, res inbound.ReceiverResult) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	a.mu.Lock()
	d := a.pending[key]
	d.events++
	d.last = a.clock.Now()
	if res.Created != "" && !res.Duplicate {
		d.created++
		d.lastNotification = res.Created
	}
	if res.Err != "" {
		d.lastError = res.Err
	}
	a.pending[key] = d
	a.mu.Unlock()
	a.requeue.add(key, a.flushDelay)
}

func (a *receiverActivity) take(key types.NamespacedName) activityDelta {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.pending[key]
	delete(a.pending, key)
	return d
}

func (a *receiverActivity) putBack(key types.NamespacedName, d activityDelta) {
	if d.events == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.pending[key]
	cur.events += d.events
	cur.created += d.created
	if cur.last.IsZero() {
		cur.last, cur.lastNotification, cur.lastError = d.last, d.lastNotification, d.lastError
	}
	a.pending[key] = cur
}

// receiver returns a Receiver and its token for the inbound handler; a
// missing one (or token) is ErrUnauthorized.
func (g inboundGlue) receiver(ctx context.Context, namespace, name string) (*v1alpha1.Receiver, []byte, error) {
	var rcv v1alpha1.Receiver
	if err := g.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &rcv); err != nil {
		return nil, nil, unauthorizedIfMissing(err)
	}
	data, err := g.secret(ctx, client.ObjectKey{Namespace: namespace, Name: rcv.Spec.SecretRef.Name})
	if err != nil {
		return nil, nil, err
	}
	token := data[v1alpha1.ReceiverSecretKey]
	if len(token) == 0 {
		return nil, nil, inbound.ErrUnauthorized
	}
	return &rcv, token, nil
}

// createNotification creates n; one of the same name already there is the
// same event again (its name comes from the event's key).
func (g inboundGlue) createNotification(ctx context.Context, n *v1alpha1.Notification) (string, bool, error) {
	err := g.Create(ctx, n)
	if apierrors.IsAlreadyExists(err) {
		return n.Name, false, nil
	}
	if err != nil {
		return "", false, err
	}
	return n.Name, true, nil
}
