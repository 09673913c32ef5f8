package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/ledger"
	"github.com/herald-dev/herald/internal/plan"
	"github.com/herald-dev/herald/internal/policy"
	"github.com/herald-dev/herald/internal/render"
	"github.com/herald-dev/herald/internal/route"
	"github.com/herald-dev/herald/senders"
)

// providerWait is how often deliveries waiting for a provider look again.
const providerWait = 5 * time.Second

// NotificationReconciler plans a Notification's deliveries, hands them to the
// dispatcher and records what happened. Deciding is done by internal/plan,
// internal/policy, internal/render and internal/route; this is the glue.
type NotificationReconciler struct {
	client.Client
	// APIReader reads what the cache leaves out: finished Notifications.
	APIReader client.Reader
	Events    recorder.EventRecorder
	Config
	Outcomes  *Outcomes
	Templates *render.Cache
	Sweeper   *Sweeper

	// memory is what the reconciler keeps between reconciles, all
	// rebuildable from status.
	memory memory
	// nsLabels bounds the namespace label of the delivery metrics.
	nsLabels *namespaceLabels
	// writes bounds the status writes in progress (writeSlots).
	writes *writeSlots
	// users reads recipients' UserPreferences from the cache uncopied.
	users *userStore
}

// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=notifications/finalizers,verbs=update
// +kubebuilder:rbac:groups=notify.herald.dev,resources=templates;userpreferences;channelproviders;clusterchannelproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=templates/status;userpreferences/status;channelproviders/status;clusterchannelproviders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile gets the Notification, works out its status, and writes it in one patch.
func (r *NotificationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var n v1alpha1.Notification
	if err := r.Get(ctx, req.NamespacedName, &n); err != nil {
		if apierrors.IsNotFound(err) {
			// Finished (and so out of the cache) or deleted.
			r.Outcomes.Forget(req.NamespacedName)
			r.memory.gone(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The cache may not have seen our last write yet: go on from what we
	// wrote rather than recompute from the older copy and fail on conflict.
	r.memory.catchUp(req.NamespacedName, &n)
	if n.Status.Phase.Finished() {
		// Our own write finished it; the cache has not dropped it yet.
		return ctrl.Result{}, nil
	}
	outcomes := r.Outcomes.Take(req.NamespacedName)
	before := n.DeepCopy()
	now := r.Clock.Now()

	w := &work{r: r, n: &n, now: now, outcomes: outcomes}
	requeue, err := w.run(ctx)
	if err != nil {
		r.Outcomes.Return(req.NamespacedName, outcomes)
		return ctrl.Result{}, err
	}
	write := !w.skipWrite && !equality.Semantic.DeepEqual(before.Status, n.Status)
	if write {
		if !w.mustWrite && !r.writes.take(req.NamespacedName) {
			// Every write slot is busy: this pass is redone when one frees,
			// as after a conflict (what it handed the dispatcher is in memory).
			r.Outcomes.Return(req.NamespacedName, outcomes)
			return ctrl.Result{}, nil
		}
		err := r.writeStatus(ctx, before, &n)
		if !w.mustWrite {
			r.writes.release()
		}
		if err != nil {
			r.Outcomes.Return(req.NamespacedName, outcomes)
			return ctrl.Result{}, err
		}
	}
	if write && before.Status.Phase == "" && n.Status.Phase != "" {
		createdTotal.Inc()
	}
	w.commit(ctx)
	r.Outcomes.Done(outcomes)
	if n.Status.Phase.Finished() {
		r.finish(&n)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// updateMaxSpecBytes is the largest spec (params and inline content) with
// which a Notification's status is written by an update rather than a merge
// patch. For a merge patch the API server encodes the stored object, merges
// and decodes the result, where an update is decoded once: 14 % less of its
// CPU in a 10,000-user fan-out, whose children's patches replaced their
// 100-delivery lists whole anyway. But an update carries the spec along:
// in the tenant-flood soak (1,000 notifications with 63 KiB of params) the
// manager's peak RSS read 300-320 MiB with updates, 223-291 with patches.
const updateMaxSpecBytes = 4 << 10

// specBytes is about the size of what can be large in n's spec: its params
// and inline content.
func specBytes(n *v1alpha1.Notification) int {
	size := 0
	if n.Spec.Params != nil {
		size = len(n.Spec.Params.Raw)
	}
	if c := n.Spec.Content; c != nil {
		if e := c.Email; e != nil {
			size += len(e.Subject) + len(e.Text) + len(e.HTML)
		}
		if m := c.SMS; m != nil {
			size += len(m.Text)
		}
		if p := c.Push; p != nil {
			size += len(p.Title) + len(p.Body)
			for k, v := range p.Data {
				size += len(k) + len(v)
			}
		}
		if w := c.Webhook; w != nil {
			size += len(w.Title) + len(w.Link) + len(w.Text) + len(w.Body)
		}
	}
	return size
}

// writeStatus writes n's status at the resourceVersion it was read at, an
// optimistic lock: writing from a copy older than the stored one would undo
// recorded outcomes, so a conflict sends the outcomes back to the buffer
// and the reconcile runs again. The cache strips managedFields; the API
// server keeps the stored ones on a subresource write.
func (r *NotificationReconciler) writeStatus(ctx context.Context, before, n *v1alpha1.Notification) error {
	from := n.ResourceVersion
	var err error
	if specBytes(n) <= updateMaxSpecBytes {
		err = r.Status().Update(ctx, n)
	} else {
		err = r.Status().Patch(ctx, n, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	}
	if err != nil {
		return err
	}
	r.memory.wrote(from, n)
	return nil
}

// finish does what follows the status write that finished n, without
// another write: the phase alone takes it out of the cache (a selectable
// field). It emits the closing Event (a Warning always; Normal ones only
// with Config.NormalEvents, or for a broadcast a person follows),
// records metrics and schedules the TTL deletion.
func (r *NotificationReconciler) finish(n *v1alpha1.Notification) {
	ready := n.Status.Phase.Ready()
	if r.Events != nil && (!ready || r.NormalEvents || broadcast(n)) {
		typ := corev1.EventTypeNormal
		if !ready {
			typ = corev1.EventTypeWarning
		}
		verdict := ptr.Deref(meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady), metav1.Condition{})
		r.Events.Eventf(n, nil, typ, verdict.Reason, "Deliver", "%s", truncate(finishNote(n, verdict.Message), 1024))
	}
	observeFinished(n, r.Clock.Now())
	r.Outcomes.uncount(client.ObjectKeyFromObject(n))
	r.memory.forgetChildren(n)
	if ref := metav1.GetControllerOf(n); ref != nil && isChild(n) {
		// The parent need not read this child back from the API server.
		r.memory.rememberChild(types.NamespacedName{Namespace: n.Namespace, Name: ref.Name}, ref.UID, n.Name, summaryOf(n))
	}
	if at, ok := deleteAt(n, r.DefaultTTLAfterFinished); ok && r.Sweeper != nil {
		r.Sweeper.Schedule(client.ObjectKeyFromObject(n), at)
	}
}

// broadcast: a Notification to several recipients, whose outcome a person
// follows; not a child of a fan-out (its parent reports).
func broadcast(n *v1alpha1.Notification) bool {
	return !isChild(n) && (len(n.Spec.Recipients) > 1 || n.Spec.RecipientSelector != nil)
}

// finishNote is the closing Event's text: the verdict and, when something
// failed, the first failed deliveries by masked address and reason.
func finishNote(n *v1alpha1.Notification, verdict string) string {
	note := fmt.Sprintf("%s: %s", n.Status.Phase, verdict)
	if n.Status.Phase.Ready() {
		return note
	}
	shown := 0
	for _, d := range n.Status.Deliveries {
		if d.State != v1alpha1.DeliveryFailed && d.State != v1alpha1.DeliveryExpired {
			continue
		}
		if shown == 3 {
			note += "; ..."
			break
		}
		sep := "; "
		if shown == 0 {
			sep = "; failed: "
		}
		note += fmt.Sprintf("%s%s %s %s", sep, d.Channel, d.Address, d.Reason)
		if d.Provider != "" {
			note += " via " + d.Provider
		}
		shown++
	}
	return note
}

// work is one reconcile of one Notification.
type work struct {
	r        *NotificationReconciler
	n        *v1alpha1.Notification
	now      time.Time
	outcomes map[string][]dispatch.Outcome
	// skipWrite: nothing worth a write happened (deliveries just handed to
	// the dispatcher); their outcomes will bring the first write.
	skipWrite bool
	// mustWrite: this pass did what cannot be redone for free (it created
	// a fan-out's children), so its write does not wait for a write slot.
	mustWrite bool
	// learned: addresses providers declared dead, to record on UserPreferences.
	learned []learnedAddress
	// ended: deliveries whose job ended in this pass; forgotten as in flight
	// and counted only once their end is written.
	ended []endedJob
	// armed: AtMostOnce jobs recorded Sending in this pass, submitted only
	// once that status is written.
	armed []submission
	// queued: jobs to submit at the end of the pass, together (SubmitAll),
	// with the index of their delivery in the pass's output.
	queued  []queuedJob
	requeue time.Duration
}

type submission struct {
	key, providerType string
	job               dispatch.Job
}

type queuedJob struct {
	submission
	idx int
	// capUser: the user whose hourly slot it took, to give back if it
	// does not go.
	capUser string
}

type endedJob struct {
	id string
	// delivery is the ended delivery's ID, for the audit record.
	delivery string
	channel  v1alpha1.Channel
	state    v1alpha1.DeliveryState
}

// commit does what must wait until the status that records it is written:
// a failed write brings the same outcomes back, and they must not be
// counted, forgotten or learned twice.
func (w *work) commit(ctx context.Context) {
	written := auditable(w.r.Audit, w.n, len(w.ended))
	for _, e := range w.ended {
		countDelivery(w.r.nsLabels.of(w.n.Namespace), e.channel, w.r.memory.ended(e.id), e.state)
		if d := written[e.delivery]; d != nil {
			audit(w.r.Audit, w.n, d)
		}
	}
	for _, a := range w.armed {
		// Failing here (the manager is stopping, the queue just went) leaves
		// it armed: the next pass submits it again.
		if w.submit(a.key, a.job) == nil {
			w.r.memory.submitted(a.job.ID, a.providerType, w.now)
		}
	}
	w.learnAll(ctx)
}

func (w *work) wakeAt(t time.Time) {
	d := t.Sub(w.now)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	if w.requeue == 0 || d < w.requeue {
		w.requeue = d
	}
}

func (w *work) run(ctx context.Context) (time.Duration, error) {
	n := w.n
	st := &n.Status
	if st.Phase.Finished() {
		return 0, nil
	}
	st.ObservedGeneration = n.Generation
	fresh := len(st.Deliveries) == 0 && len(st.Children) == 0
	if fresh {
		if err := policy.ValidateNotification(&n.Spec, n.CreationTimestamp.Time); err != nil {
			// Admission could not check it, and no later pass can fix it.
			w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseFailed, Finished: true, Stalled: true, Reason: v1alpha1.ReasonInvalidSpec, Message: err.Error()})
			return 0, nil
		}
	}
	if n.Spec.IdempotencyKey != "" && fresh {
		orig, err := w.r.original(ctx, n)
		if err != nil {
			return 0, err
		}
		if orig != "" {
			st.DuplicateOf = orig
			w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseSuppressed, Finished: true, Ready: true, Reason: v1alpha1.ReasonDuplicate,
				Message: fmt.Sprintf("idempotencyKey already used by %s within the dedup window", orig)})
			return 0, nil
		}
	}
	if n.Spec.SendAt != nil && n.Spec.SendAt.After(w.now) && len(st.Deliveries) == 0 {
		w.wakeAt(n.Spec.SendAt.Time)
		w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseScheduled, Reason: v1alpha1.ReasonScheduled, Message: "waiting for sendAt " + n.Spec.SendAt.UTC().Format(time.RFC3339)})
		return w.requeue, nil
	}

	c, stop, err := w.content(ctx)
	if err != nil || stop {
		return w.requeue, err
	}
	channels := plan.Channels(n.Spec.Channels, c.compiled.Channels())
	in := plan.Input{Recipients: n.Spec.Recipients, Channels: channels}
	if in.Users, in.Selected, err = w.users(ctx); err != nil {
		var bad *invalidSelector
		if errors.As(err, &bad) {
			// Admission cannot parse a label selector; only a person can fix it.
			w.stuck(v1alpha1.ReasonInvalidSpec, "spec.recipientSelector: "+truncate(bad.err.Error(), 1000), true)
			return w.requeue, nil
		}
		return 0, err
	}
	targets := plan.Targets(in)
	if !plan.Fits(targets, w.r.MaxDeliveriesPerObject, maxStatusBytes) && !isChild(n) {
		return w.fanOut(ctx, in, targets)
	}
	if err := w.deliver(ctx, c, targets); err != nil {
		return 0, err
	}
	s := ledger.Summarize(st.Deliveries, n.Spec.Fallback)
	v := ledger.Judge(s, allExpired(st.Deliveries), st.StartTime != nil)
	if c.stalled != nil {
		v.Stalled, v.Reason, v.Message = true, c.stalled.reason, c.stalled.message
	} else if c.waiting != nil && !v.Finished {
		v.Reason, v.Message = c.waiting.reason, c.waiting.message
	}
	st.Summary = s
	w.verdict(v)
	return w.requeue, nil
}

// verdict writes phase, conditions and completion time.
func (w *work) verdict(v ledger.Verdict) {
	st := &w.n.Status
	st.Phase = v.Phase
	setConditions(&st.Conditions, w.n.Generation, Outcome{Ready: v.Ready, Stalled: v.Stalled, Reason: v.Reason, Message: v.Message})
	finished := metav1.ConditionFalse
	if v.Finished {
		finished = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionFinished, Status: finished,
		ObservedGeneration: w.n.Generation, Reason: v.Reason, Message: v.Message})
	if v.Finished && st.CompletionTime == nil {
		t := metav1.NewTime(w.now)
		st.CompletionTime = &t
	}
}

type note struct{ reason, message string }

// stuck reports a Notification that cannot be planned (its Template is
// missing, does not render, lacks params, its selector does not parse): it
// waits, Stalled when only a person can help, until its pending deadline,
// and then fails with the same reason. Nothing waits for ever.
func (w *work) stuck(reason, message string, stalled bool) {
	deadline := w.r.pendingDeadline(w.n)
	if !w.now.Before(deadline) {
		w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseFailed, Finished: true, Stalled: true, Reason: reason,
			Message: truncate(fmt.Sprintf("gave up at %s: %s", deadline.UTC().Format(time.RFC3339), message), 1024)})
		return
	}
	w.wakeAt(deadline)
	w.verdict(ledger.Verdict{Phase: v1alpha1.PhasePending, Stalled: stalled, Reason: reason, Message: message})
}

// timing is spec.sendAt and spec.expiresAfter, zero when unset.
func timing(n *v1alpha1.Notification) (sendAt time.Time, expiresAfter time.Duration) {
	if n.Spec.SendAt != nil {
		sendAt = n.Spec.SendAt.Time
	}
	if n.Spec.ExpiresAfter != nil {
		expiresAfter = n.Spec.ExpiresAfter.Duration
	}
	return sendAt, expiresAfter
}

// pendingDeadline is when a Notification, or a delivery, still waiting for
// something that is not there (a Template, a Ready provider) gives up: its
// expiry, or MaxPending after it was due, whichever comes first.
func (r *NotificationReconciler) pendingDeadline(n *v1alpha1.Notification) time.Time {
	sendAt, expiresAfter := timing(n)
	deadline := policy.Expiry(n.CreationTimestamp.Time, sendAt, expiresAfter)
	if r.MaxPending > 0 {
		due := n.CreationTimestamp.Time
		if sendAt.After(due) {
			due = sendAt
		}
		if cap := due.Add(r.MaxPending); cap.Before(deadline) {
			deadline = cap
		}
	}
	return deadline
}

// content is the compiled template and what it says about the Notification.
type content struct {
	compiled *render.Compiled
	params   render.Params
	// rawParams are the params as the manager's cache holds them (shared,
	// never written): what a queued job keeps, decoding them just before
	// its send, so a queue of large messages holds one copy of each
	// Notification's params, not two.
	rawParams *apiextensionsv1.JSON
	category  string
	// stalled: a person must fix the Notification or its Template.
	stalled *note
	// waiting: some deliveries wait for something that may appear by itself.
	waiting *note
}

// content resolves the template (or inline content) and params. stop means
// the Notification cannot go further now and its status says why.
func (w *work) content(ctx context.Context) (*content, bool, error) {
	n := w.n
	c := &content{category: n.Spec.Category}
	var spec *v1alpha1.TemplateSpec
	var key render.Key
	if ref := n.Spec.TemplateRef; ref != nil {
		var t v1alpha1.Template
		if err := w.r.Get(ctx, types.NamespacedName{Namespace: n.Namespace, Name: ref.Name}, &t); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, true, err
			}
			w.stuck(v1alpha1.ReasonTemplateNotFound, fmt.Sprintf("Template %q not found in namespace %s; waiting for it", ref.Name, n.Namespace), false)
			return nil, true, nil
		}
		spec, key = &t.Spec, render.Key{UID: t.UID, Generation: t.Generation}
		if c.category == "" {
			c.category = t.Spec.Category
		}
	} else {
		spec, key = render.Inline(n.Spec.Content), render.Key{UID: n.UID, Generation: n.Generation}
	}
	stall := func(reason string, err error) (*content, bool, error) {
		w.stuck(reason, truncate(err.Error(), 1024), true)
		return nil, true, nil
	}
	compiled, err := w.r.Templates.Get(key, spec)
	if err != nil {
		return stall(v1alpha1.ReasonRenderError, err)
	}
	params, err := render.DecodeParams(n.Spec.Params)
	if err != nil {
		return stall(v1alpha1.ReasonRenderError, err)
	}
	if err := render.CheckRequiredParams(spec.RequiredParams, params); err != nil {
		return stall(v1alpha1.ReasonMissingParams, err)
	}
	c.compiled, c.params, c.rawParams = compiled, params, w.sharedParams(ctx)
	return c, false, nil
}

// sharedParams returns the cache's copy of the Notification's params when
// it holds the same generation (read without a deep copy: read only, and
// never handed to anything that decodes into it), else the reconcile's.
func (w *work) sharedParams(ctx context.Context) *apiextensionsv1.JSON {
	var cached v1alpha1.Notification
	if err := w.r.Client.Get(ctx, client.ObjectKeyFromObject(w.n), &cached, client.UnsafeDisableDeepCopy); err == nil &&
		cached.UID == w.n.UID && cached.Generation == w.n.Generation {
		return cached.Spec.Params
	}
	return w.n.Spec.Params
}

// invalidSelector is a recipientSelector that does not parse.
type invalidSelector struct{ err error }

func (e *invalidSelector) Error() string { return e.err.Error() }

// users reads the UserPreferences the recipients name and the selector matches.
func (w *work) users(ctx context.Context) (map[string]*v1alpha1.UserPreference, []*v1alpha1.UserPreference, error) {
	n := w.n
	named := map[string]*v1alpha1.UserPreference{}
	for _, rc := range n.Spec.Recipients {
		if rc.User == "" || named[rc.User] != nil {
			continue
		}
		u, err := w.r.users.get(ctx, n.Namespace, rc.User)
		if err != nil {
			return nil, nil, err
		}
		if u == nil {
			// The cache may not have seen a user created just before the
			// Notification: ask the API server before calling it missing.
			u = &v1alpha1.UserPreference{}
			err := w.r.APIReader.Get(ctx, types.NamespacedName{Namespace: n.Namespace, Name: rc.User}, u)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
		}
		named[rc.User] = u
	}
	if n.Spec.RecipientSelector == nil {
		return named, nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(n.Spec.RecipientSelector)
	if err != nil {
		return nil, nil, &invalidSelector{err}
	}
	selected, err := w.r.users.selectIn(ctx, n.Namespace, sel)
	if err != nil {
		return nil, nil, err
	}
	return named, selected, nil
}

// deliver brings every target's delivery one step further: outcomes folded
// in, policy applied, ready ones rendered and handed to the dispatcher.
func (w *work) deliver(ctx context.Context, c *content, targets []Target) error {
	n, st := w.n, &w.n.Status
	existing := make(map[string]int, len(st.Deliveries))
	for i, d := range st.Deliveries {
		existing[d.ID] = i
	}
	out := make([]v1alpha1.Delivery, 0, len(targets))
	routes := map[routeKey][]route.Choice{}
	sendAt, expiresAfter := timing(n)
	deadline := policy.Expiry(n.CreationTimestamp.Time, sendAt, expiresAfter)
	recorded := len(st.Deliveries)

	planned := make(map[string]bool, len(targets))
	// With spec.fallback, a recipient's later channels wait on its earlier
	// ones: targets go by fallback rank, and each rank sees how the ranks
	// before it ended for the same recipient.
	earlier := map[string][]v1alpha1.DeliveryState{}
	for _, group := range plan.ByRank(targets, n.Spec.Fallback) {
		start := len(out)
		for _, t := range group {
			planned[t.ID] = true
			var d v1alpha1.Delivery
			if i, ok := existing[t.ID]; ok {
				d = st.Deliveries[i]
			} else {
				d = v1alpha1.Delivery{ID: t.ID, Recipient: truncate(t.Recipient, 253), Channel: t.Channel, Address: t.Masked, State: v1alpha1.DeliveryPending}
			}
			jobID := string(n.UID) + "/" + t.ID
			f := ledger.Fold(&d, w.outcomes[jobID], n.Spec.Delivery)
			if f.Ended && ledger.FailsOver(&d) {
				// Failed for its provider's sake: the next usable provider of
				// the fallback chain takes it, planned below like a new one.
				if next := w.route(ctx, t, append(slices.Clip(d.TriedProviders), d.Provider), routes); next.Ready {
					ledger.FailOver(&d, next.Ref())
					f.Ended = false
				}
			}
			if f.Ended {
				w.ended = append(w.ended, endedJob{id: jobID, delivery: t.ID, channel: t.Channel, state: d.State})
				if f.Learn != "" && t.User != nil {
					w.learned = append(w.learned, learnedAddress{user: t.UserName, channel: t.Channel, raw: t.RawAddress, reason: f.Learn})
				}
			} else if f.Released {
				w.r.memory.ended(jobID) // plan it again below
			}
			if first := d.FirstAttempt(); first != nil && (st.StartTime == nil || first.Before(st.StartTime)) {
				start := *first
				st.StartTime = &start
			}
			if d.State.Terminal() {
				out = append(out, d)
				continue
			}
			// On its way: the dispatcher reports its end, or that it dropped
			// it (provider removed, manager stopping). Past the recheck time it
			// is submitted again anyway, which the dispatcher ignores while it
			// holds the job: a safety net, not the way jobs come back.
			if at, ok := w.r.memory.inflight(jobID, w.now); ok {
				w.wakeAt(at)
				out = append(out, d)
				continue
			}
			if d.State == v1alpha1.DeliverySending && !w.r.memory.isArmed(jobID) {
				// Recorded Sending by a process that is gone (or by this one
				// before a restart): it may have reached the provider.
				ledger.Interrupt(&d)
				w.ended = append(w.ended, endedJob{id: jobID, delivery: t.ID, channel: t.Channel, state: d.State})
				out = append(out, d)
				continue
			}
			if t.Missing {
				d.State, d.Reason, d.Message = v1alpha1.DeliveryFailed, v1alpha1.ReasonUserNotFound, fmt.Sprintf("UserPreference %q not found", t.UserName)
				out = append(out, d)
				continue
			}
			if step, why := ledger.Fallback(plan.Rank(n.Spec.Fallback, t.Channel), earlier[plan.RecipientOf(t.ID)]); step != ledger.FallbackGo {
				d.NextAttemptTime = nil
				d.State, d.Reason, d.Message = v1alpha1.DeliveryPending, v1alpha1.ReasonFallbackPending, why
				if step == ledger.FallbackNotNeeded {
					d.State, d.Reason = v1alpha1.DeliverySuppressed, v1alpha1.ReasonFallbackNotNeeded
				}
				out = append(out, d)
				continue
			}
			dec := policy.Decide(&policy.Input{
				Now: w.now, Priority: n.Spec.Priority, Category: c.category, Created: n.CreationTimestamp.Time, SendAt: sendAt,
				ExpiresAfter: expiresAfter, Channel: t.Channel, Address: t.RawAddress, Preference: t.User,
				SentInLastHour: w.r.memory.sentInLastHour(n.Namespace, t.UserName, w.now),
			})
			switch dec.Action {
			case policy.Suppress, policy.Expire:
				d.State, d.Reason, d.Message, d.NextAttemptTime = dec.State(), dec.Reason, dec.Message, nil
			case policy.Defer:
				until := metav1.NewTime(dec.Until)
				d.State, d.Reason, d.Message, d.NextAttemptTime = v1alpha1.DeliveryDeferred, dec.Reason, dec.Message, &until
				w.wakeAt(dec.Until)
			case policy.Send:
				if capped(t.User) {
					// Policy counted a snapshot; the slot is taken here, at
					// once, so two workers cannot both use the last one.
					if ok, free := w.r.memory.reserveSend(n.Namespace, t.UserName, int(t.User.Spec.MaxPerHour), w.now); !ok {
						until := metav1.NewTime(free)
						d.State, d.Reason, d.NextAttemptTime = v1alpha1.DeliveryDeferred, v1alpha1.ReasonRateCapped, &until
						d.Message = fmt.Sprintf("the user's cap of %d messages per hour is reached", t.User.Spec.MaxPerHour)
						w.wakeAt(free)
						break
					}
				}
				if q, ok := w.send(ctx, c, t, &d, jobID, deadline, routes); ok {
					q.idx = len(out)
					if capped(t.User) {
						q.capUser = t.UserName
					}
					w.queued = append(w.queued, q)
				} else if capped(t.User) {
					w.r.memory.releaseSend(n.Namespace, t.UserName, w.now)
				}
			}
			out = append(out, d)
		}
		for _, d := range out[start:] {
			if plan.Rank(n.Spec.Fallback, d.Channel) >= 0 {
				r := plan.RecipientOf(d.ID)
				earlier[r] = append(earlier[r], d.State)
			}
		}
	}
	if len(targets) == 1 && len(w.queued) == 1 {
		w.queued[0].job.Alone = true
	}
	submitted := w.submitQueued(c, out)
	// Deliveries recorded for recipients no longer planned (a user who
	// left the selector, or was deleted) stay in the log: what was sent
	// stays sent, and what was not is never sent.
	for _, d := range st.Deliveries {
		if planned[d.ID] {
			continue
		}
		if !d.State.Terminal() {
			d.State, d.Reason, d.NextAttemptTime = v1alpha1.DeliverySuppressed, v1alpha1.ReasonNotPlanned, nil
			d.Message = "the recipient is no longer among the Notification's recipients"
		}
		out = append(out, d)
	}
	for i := range out {
		ledger.Clamp(&out[i])
	}
	if len(out) == 0 {
		out = nil
	}
	st.Deliveries = out
	// Every delivery went straight to the dispatcher and nothing was recorded
	// before: the outcomes will bring the first write, so skip this one.
	w.skipWrite = recorded == 0 && submitted == len(out) && submitted > 0 && len(w.outcomes) == 0
	if !w.skipWrite {
		return nil
	}
	return ctx.Err()
}

// Target is a planned delivery.
type Target = plan.Target

type routeKey struct {
	ch       v1alpha1.Channel
	platform v1alpha1.Platform
	webhook  string
}

// send renders the message and returns the job to submit, or false and d
// says why not (or, under AtMostOnce, the job waits for its Sending write).
func (w *work) send(ctx context.Context, c *content, t Target, d *v1alpha1.Delivery, jobID string, deadline time.Time, routes map[routeKey][]route.Choice) (queuedJob, bool) {
	n := w.n
	chain := w.chain(ctx, t, routes)
	choice := route.Pick(chain, d.TriedProviders)
	if !choice.Ready && !w.now.Before(w.r.pendingDeadline(n)) {
		d.State, d.Reason, d.NextAttemptTime = v1alpha1.DeliveryFailed, v1alpha1.ReasonProviderNotReady, nil
		d.Message = truncate("gave up waiting for a provider: "+choice.Message, 1024)
		return queuedJob{}, false
	}
	if !choice.Ready {
		d.State, d.Reason, d.Message = v1alpha1.DeliveryPending, v1alpha1.ReasonProviderNotReady, truncate(choice.Message, 1024)
		c.waiting = &note{v1alpha1.ReasonProviderNotReady, d.Message}
		w.wakeAt(w.now.Add(providerWait))
		w.wakeAt(w.r.pendingDeadline(n))
		return queuedJob{}, false
	}
	rcpt := render.Recipient{Name: t.Recipient}
	if t.User != nil {
		rcpt.Locale, rcpt.TimeZone = t.User.Spec.Locale, t.User.Spec.TimeZone
	} else {
		rcpt.Name = t.RawAddress
	}
	in := &render.Input{
		Params: c.params, Recipient: rcpt,
		Notification: render.Notification{Name: n.Name, Namespace: n.Namespace, Category: c.category, UID: string(n.UID)},
	}
	// Rendered now to find what a person must fix, and again by the queue
	// just before the send (job.Render): the queue holds no rendered bytes.
	if _, err := c.compiled.Render(t.Channel, in); err != nil {
		if errors.Is(err, render.ErrNoContent) {
			d.State, d.Reason, d.Message = v1alpha1.DeliverySuppressed, v1alpha1.ReasonNoContent, fmt.Sprintf("the content defines no %s message", t.Channel)
			return queuedJob{}, false
		}
		// A body that does not render for this recipient needs a person.
		d.Reason, d.Message = v1alpha1.ReasonRenderError, truncate(err.Error(), 1024)
		c.stalled = &note{v1alpha1.ReasonRenderError, d.Message}
		return queuedJob{}, false
	}
	meta := &senders.Message{ID: ledger.MessageID(jobID), Priority: n.Spec.Priority, Expiration: deadline,
		Notification: senders.NotificationRef{Namespace: n.Namespace, Name: n.Name, UID: string(n.UID), Category: c.category}}
	compiled, ch, raw := c.compiled, t.Channel, c.rawParams
	queued := *in
	queued.Params = nil // decoded again from raw at send time
	unsub := w.unsubscribeURL(t, c.category)
	job := dispatch.Job{ID: jobID, To: t.Address, Msg: meta, Attempts: int(d.Attempts), Deadline: deadline, Provider: choice.Ref(),
		Render: func() (*senders.Message, error) {
			in := queued
			params, err := render.DecodeParams(raw)
			if err != nil {
				return nil, senders.Permanent(v1alpha1.ReasonRenderError, "", err.Error())
			}
			in.Params = params
			m, err := compiled.Render(ch, &in)
			if err != nil {
				return nil, senders.Permanent(v1alpha1.ReasonRenderError, "", err.Error())
			}
			m.ID, m.Notification, m.Priority, m.Expiration = meta.ID, meta.Notification, meta.Priority, meta.Expiration
			if m.Email != nil {
				m.Email.ListUnsubscribe = unsub
			}
			return m, nil
		}}
	if d.NextAttemptTime != nil && d.State == v1alpha1.DeliveryRetrying {
		job.NotBefore = d.NextAttemptTime.Time
	}
	// While the provider's circuit is open, a job with somewhere else to go
	// fails over at once instead of waiting for the circuit's probe.
	job.FailOver = route.Pick(chain, append(slices.Clip(d.TriedProviders), choice.Ref())).Ready
	d.Provider = job.Provider
	if atMostOnce(n) {
		// Recorded as Sending first; sent once that is written (commit).
		// After a crash, Sending without this process's memory of it is
		// Unknown, never sent again.
		w.r.memory.arm(jobID)
		d.State, d.Reason, d.Message, d.NextAttemptTime = v1alpha1.DeliverySending, "", "", nil
		w.armed = append(w.armed, submission{key: choice.Key, providerType: string(choice.Spec.Type), job: job})
		w.wakeAt(w.now.Add(inflightCheck))
		return queuedJob{}, false
	}
	return queuedJob{submission: submission{key: choice.Key, providerType: string(choice.Spec.Type), job: job}}, true
}

// submit hands jobs to the dispatcher's queue key, counted for the status
// hold (Outcomes.Expect).
func (w *work) submit(key string, jobs ...dispatch.Job) error {
	self := client.ObjectKeyFromObject(w.n)
	w.r.Outcomes.Expect(self, len(jobs))
	err := w.r.Dispatcher.SubmitAll(key, jobs)
	if err != nil {
		w.r.Outcomes.Expect(self, -len(jobs))
	}
	return err
}

// submitQueued hands the pass's jobs to the dispatcher, each provider's
// together, and records on each delivery in out whether its job went. It
// returns how many did.
func (w *work) submitQueued(c *content, out []v1alpha1.Delivery) int {
	byKey := map[string][]queuedJob{}
	var keys []string
	for _, q := range w.queued {
		if byKey[q.key] == nil {
			keys = append(keys, q.key)
		}
		byKey[q.key] = append(byKey[q.key], q)
	}
	submitted := 0
	for _, key := range keys {
		qs := byKey[key]
		jobs := make([]dispatch.Job, len(qs))
		for i, q := range qs {
			jobs[i] = q.job
		}
		err := w.submit(key, jobs...)
		for _, q := range qs {
			d := &out[q.idx]
			switch {
			case err == nil:
				submitted++
				w.r.memory.submitted(q.job.ID, q.providerType, w.now)
				w.wakeAt(w.now.Add(inflightCheck))
				if d.Reason == v1alpha1.ReasonProviderNotReady || d.Reason == v1alpha1.ReasonRenderError || d.State == v1alpha1.DeliveryDeferred {
					d.State, d.Reason, d.Message = v1alpha1.DeliveryPending, "", ""
				}
				continue
			case errors.Is(err, dispatch.ErrDraining) || errors.Is(err, dispatch.ErrStopped):
				// The manager is stopping: the next leader sends it.
			default:
				// The provider's queue is not up yet (just became Ready, or
				// the manager just started): try again shortly.
				d.Reason, d.Message = v1alpha1.ReasonProviderNotReady, truncate(err.Error(), 1024)
				c.waiting = &note{v1alpha1.ReasonProviderNotReady, d.Message}
				w.wakeAt(w.now.Add(providerWait / 5))
			}
			if q.capUser != "" {
				w.r.memory.releaseSend(w.n.Namespace, q.capUser, w.now)
			}
		}
	}
	return submitted
}

func atMostOnce(n *v1alpha1.Notification) bool { return n.Spec.Delivery == v1alpha1.AtMostOnce }

// route picks the provider for a target: the first usable one of its
// chain (see chain) that the delivery has not tried.
func (w *work) route(ctx context.Context, t Target, tried []string, routes map[routeKey][]route.Choice) route.Choice {
	return route.Pick(w.chain(ctx, t, routes), tried)
}

// chain is the target's provider chain: the channel's (for push, the
// device platform's) provider and its fallbacks, resolved once per pass
// for each channel, platform and webhook room.
func (w *work) chain(ctx context.Context, t Target, routes map[routeKey][]route.Choice) []route.Choice {
	rk := routeKey{ch: t.Channel, webhook: t.Webhook}
	if t.Address.Device != nil {
		rk.platform = t.Address.Device.Platform
	}
	if chain, ok := routes[rk]; ok {
		return chain
	}
	var override *v1alpha1.ProviderReference
	var fallback []v1alpha1.ProviderReference
	if r := w.n.Spec.Providers.Override(t.Channel, rk.platform); r != nil {
		override, fallback = &r.ProviderReference, r.Fallback
	}
	if t.Webhook != "" {
		override, fallback = &v1alpha1.ProviderReference{Kind: route.KindChannelProvider, Name: t.Webhook}, nil
	}
	primary, err := route.Provider(ctx, w.r.Client, w.n.Namespace, t.Channel, rk.platform, override)
	var chain []route.Choice
	if err == nil {
		chain, err = route.Chain(ctx, w.r.Client, w.n.Namespace, t.Channel, rk.platform, primary, fallback)
	}
	if err != nil {
		chain = []route.Choice{{Reason: v1alpha1.ReasonProviderNotReady, Message: err.Error()}}
	}
	routes[rk] = chain
	return chain
}

func allExpired(ds []v1alpha1.Delivery) bool {
	any := false
	for _, d := range ds {
		switch d.State {
		case v1alpha1.DeliveryExpired:
			any = true
		case v1alpha1.DeliveryFailed:
			return false
		}
	}
	return any
}

// original returns the name of an earlier Notification with the same
// idempotencyKey created within the dedup window, or "". It asks the API
// server (finished Notifications are not cached) through the key's
// selectable field. Creation times have second resolution: of two created
// in the same second, one that has already started is the original (a
// retried pipeline step can follow a quick first one within the second);
// between two that have not, the smaller name.
func (r *NotificationReconciler) original(ctx context.Context, n *v1alpha1.Notification) (string, error) {
	var list v1alpha1.NotificationList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(n.Namespace), client.MatchingFields{"spec.idempotencyKey": n.Spec.IdempotencyKey}); err != nil {
		return "", err
	}
	best := ""
	var bestTime time.Time
	for _, o := range list.Items {
		if o.UID == n.UID || o.Status.DuplicateOf != "" {
			continue
		}
		created := o.CreationTimestamp.Time
		older := created.Before(n.CreationTimestamp.Time) ||
			(created.Equal(n.CreationTimestamp.Time) && (o.Status.Phase != "" || o.Name < n.Name))
		if !older || n.CreationTimestamp.Sub(created) > r.DedupWindow {
			continue
		}
		if best == "" || created.Before(bestTime) {
			best, bestTime = o.Name, created
		}
	}
	return best, nil
}

// learnedAddress is an address a provider declared dead or unsubscribed.
type learnedAddress struct {
	user    string
	channel v1alpha1.Channel
	raw     string
	reason  string
}

// learn records dead devices and unsubscribed addresses on the users'
// preferences, so later notifications skip them. A failure is logged, not
// retried: the next failed send teaches it again.
func (w *work) learnAll(ctx context.Context) {
	for _, l := range w.learned {
		if err := w.r.recordLearned(ctx, w.n.Namespace, l, w.now); err != nil {
			log.FromContext(ctx).Error(err, "recording what the provider reported", "user", l.user, "reason", l.reason)
		}
	}
}

// indexTemplateRef finds the Notifications that wait for a Template.
const indexTemplateRef = "spec.templateRef.name"

// SetupWithManager registers the reconciler, the TTL sweeper and the watches:
// Notifications (unfinished, by the cache's selector), their children's phase
// changes, Templates they name, and the dispatcher's outcomes.
func (r *NotificationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	registerMetrics()
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.Notification{}, indexTemplateRef, func(o client.Object) []string {
		if ref := o.(*v1alpha1.Notification).Spec.TemplateRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if r.Sweeper != nil {
		if err := mgr.Add(r.Sweeper); err != nil {
			return err
		}
	}
	childPhase := predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.(*v1alpha1.Notification).Status.Phase != e.ObjectNew.(*v1alpha1.Notification).Status.Phase
		},
	}
	// A quarter of the workers (at least one) never wait on a status write.
	r.writes = newWriteSlots(r.Workers-max(1, r.Workers/4), r.Outcomes.wake)
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Notification{}).
		Owns(&v1alpha1.Notification{}, builder.WithPredicates(childPhase)).
		Watches(&v1alpha1.Template{}, handler.EnqueueRequestsFromMapFunc(r.forTemplate)).
		Watches(&v1alpha1.ChannelProvider{}, handler.EnqueueRequestsFromMapFunc(r.forProvider), builder.WithPredicates(readyChanged)).
		Watches(&v1alpha1.ClusterChannelProvider{}, handler.EnqueueRequestsFromMapFunc(r.forProvider), builder.WithPredicates(readyChanged)).
		WatchesRawSource(r.Outcomes.Source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.Workers)}).
		Named("notification").
		Complete(r)
}

// readyChanged passes provider events that can change where deliveries
// go: created, deleted, or Ready flipped. A provider reconciler removes the
// queue of a provider before it reports it not Ready.
var readyChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return providerReady(e.ObjectOld) != providerReady(e.ObjectNew)
	},
}

func providerReady(o client.Object) bool {
	switch p := o.(type) {
	case *v1alpha1.ChannelProvider:
		return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady)
	case *v1alpha1.ClusterChannelProvider:
		return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady)
	}
	return false
}

// forProvider maps a provider to the unfinished Notifications that may
// use it: those of its namespace, or all for a ClusterChannelProvider.
// Deliveries waiting for a provider go as soon as it is Ready, and those
// in the queue of one that went away are picked up again.
func (r *NotificationReconciler) forProvider(ctx context.Context, p client.Object) []reconcile.Request {
	var opts []client.ListOption
	if p.GetNamespace() != "" {
		opts = append(opts, client.InNamespace(p.GetNamespace()))
	}
	var list v1alpha1.NotificationList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "listing Notifications for a provider")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if n := &list.Items[i]; !n.Status.Phase.Finished() && len(n.Status.Children) == 0 {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(n)})
		}
	}
	return reqs
}

// forTemplate maps a Template to the unfinished Notifications naming it.
func (r *NotificationReconciler) forTemplate(ctx context.Context, t client.Object) []reconcile.Request {
	var list v1alpha1.NotificationList
	if err := r.List(ctx, &list, client.InNamespace(t.GetNamespace()), client.MatchingFields{indexTemplateRef: t.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing Notifications for a Template")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i, n := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&n)}
	}
	return reqs
}
