package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/ledger"
	"github.com/herald-dev/herald/internal/receipt"
)

// Receipts buffers verified provider receipts until the receipt reconciler
// folds them into their Notifications: every receipt that arrives for a
// Notification within FlushDelay shares one status write. The HTTP handler
// only appends, so a burst of callbacks never waits on the API server.
type Receipts struct {
	// FlushDelay holds a write back so receipts arriving together share it.
	FlushDelay time.Duration
	// MaxWait is how long a receipt that overtook its delivery's Sent
	// outcome (callbacks can be quicker than Herald's own status write) is
	// kept for it before it is dropped.
	MaxWait time.Duration
	Clock   clock.PassiveClock

	pending pending[heldReceipt]
	requeue requeuer
}

type heldReceipt struct {
	receipt.Receipt
	arrived time.Time
}

// NewReceipts returns an empty buffer.
func NewReceipts(flushDelay time.Duration, c clock.PassiveClock) *Receipts {
	return &Receipts{FlushDelay: flushDelay, MaxWait: 2 * time.Minute, Clock: c}
}

// Add buffers receipts (inbound.Providers.Receipts).
func (b *Receipts) Add(rs []receipt.Receipt) {
	now := b.Clock.Now()
	for _, r := range rs {
		if b.pending.add(r.Notification, heldReceipt{Receipt: r, arrived: now}) {
			b.requeue.add(r.Notification, b.FlushDelay)
		}
	}
}

// Len is the number of Notifications with receipts not yet written,
// buffered or being written (0 for a nil buffer: no inbound server).
func (b *Receipts) Len() int {
	if b == nil {
		return 0
	}
	return b.pending.len()
}

// ReceiptReconciler writes buffered receipts to their Notification's
// status: one patch per Notification per batch, read from and written to
// the API server (finished Notifications, which most receipts are about,
// are not in the cache). It runs on every replica: receipts arrive at
// whichever one the load balancer picked, and the optimistic lock orders
// its writes with the leader's.
type ReceiptReconciler struct {
	client.Client
	APIReader client.Reader
	Events    recorder.EventRecorder
	Receipts  *Receipts
	Clock     clock.PassiveClock
}

// Reconcile folds the receipts buffered for one Notification into its status.
func (r *ReceiptReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	held := r.Receipts.pending.take(req.NamespacedName)
	if len(held) == 0 {
		return ctrl.Result{}, nil
	}
	var n v1alpha1.Notification
	if err := r.APIReader.Get(ctx, req.NamespacedName, &n); err != nil {
		if apierrors.IsNotFound(err) {
			for _, h := range held {
				inbound.CountReceipt(h.Provider, "unmatched")
			}
			r.Receipts.pending.done()
			return ctrl.Result{}, nil
		}
		r.Receipts.pending.putBack(req.NamespacedName, held)
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	before := n.DeepCopy()
	f := foldReceipts(&n, held, now, r.Receipts.MaxWait)
	if !equality.Semantic.DeepEqual(before.Status, n.Status) {
		if n.Status.Phase.Finished() && len(n.Status.Children) == 0 {
			// The reconciler no longer looks at it: summary, phase and
			// conditions follow the deliveries here.
			n.Status.Summary = ledger.Summarize(n.Status.Deliveries, n.Spec.Fallback)
			(&work{n: &n, now: now}).verdict(ledger.Judge(n.Status.Summary, allExpired(n.Status.Deliveries), n.Status.StartTime != nil))
		}
		if err := r.Status().Patch(ctx, &n, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			// A conflict (the leader wrote outcomes): read again and refold.
			r.Receipts.pending.putBack(req.NamespacedName, held)
			return ctrl.Result{}, err
		}
		if len(f.failed) > 0 && r.Events != nil {
			r.Events.Eventf(&n, nil, corev1.EventTypeWarning, v1alpha1.ReasonUndelivered, "Receipt", "%s",
				truncate(fmt.Sprintf("%d sent message(s) were not delivered: %s", len(f.failed), strings.Join(f.failed, "; ")), 1024))
		}
	}
	for _, c := range f.counts {
		inbound.CountReceipt(c[0], c[1])
	}
	l := learner{Client: r.Client, APIReader: r.APIReader}
	for _, la := range f.learned {
		if err := l.record(ctx, n.Namespace, la, now); err != nil {
			log.FromContext(ctx).Error(err, "recording what a receipt taught", "user", la.user, "reason", la.reason)
		}
	}
	r.Receipts.pending.putBack(req.NamespacedName, f.later)
	if len(f.later) > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// folded is what a batch of receipts did to one Notification.
type folded struct {
	later   []heldReceipt // overtook their delivery's Sent
	learned []learnedAddress
	failed  []string    // masked address and reason, for the Event
	counts  [][2]string // provider, outcome
}

// foldReceipts applies receipts to n's deliveries.
func foldReceipts(n *v1alpha1.Notification, held []heldReceipt, now time.Time, maxWait time.Duration) folded {
	var f folded
	byMsg := make(map[string]int, len(n.Status.Deliveries))
	for i, d := range n.Status.Deliveries {
		byMsg[ledger.MessageID(string(n.UID)+"/"+d.ID)] = i
	}
	wait := func(h heldReceipt) {
		if now.Sub(h.arrived) < maxWait {
			f.later = append(f.later, h)
		} else {
			f.counts = append(f.counts, [2]string{h.Provider, "expired"})
		}
	}
	for _, h := range held {
		i, ok := byMsg[h.MessageID]
		switch {
		case h.UID != "" && h.UID != n.UID:
			// Another Notification of the same name: never trusted with it.
			f.counts = append(f.counts, [2]string{h.Provider, "unmatched"})
			continue
		case !ok && !n.Status.Phase.Finished():
			// Its delivery is not in status yet: a send's first status
			// write can come after the provider's receipt.
			wait(h)
			continue
		case !ok || (h.Via != "" && n.Status.Deliveries[i].Provider != h.Via):
			// No such delivery, or a provider that did not send it.
			f.counts = append(f.counts, [2]string{h.Provider, "unmatched"})
			continue
		}
		d := &n.Status.Deliveries[i]
		res := receipt.Apply(d, h.Receipt)
		switch res {
		case receipt.NotYet:
			wait(h)
			continue
		case receipt.Applied:
			ledger.Clamp(d)
			if d.State == v1alpha1.DeliveryFailed {
				f.failed = append(f.failed, d.Address+" "+d.Reason)
			}
		}
		f.counts = append(f.counts, [2]string{h.Provider, res.String() + "_" + h.Event})
		if h.Learn != "" && res != receipt.Mismatch && h.Address != "" && isName(d.Recipient) {
			f.learned = append(f.learned, learnedAddress{user: d.Recipient, channel: d.Channel, raw: h.Address, reason: h.Learn})
		}
	}
	return f
}

// isName: the delivery's recipient is a user (a UserPreference name), not
// a masked address given inline.
func isName(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// SetupWithManager registers the receipt reconciler; it runs on every replica.
func (r *ReceiptReconciler) SetupWithManager(mgr ctrl.Manager) error {
	inbound.RegisterMetrics()
	return ctrl.NewControllerManagedBy(mgr).
		Named("receipt").
		WatchesRawSource(r.Receipts.requeue.source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2, NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}
