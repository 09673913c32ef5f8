package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ledger"
	"github.com/herald-dev/herald/internal/plan"
)

// childPoll is how often a parent looks at its children without being told:
// each child's phase change and its leaving the cache (finished) already
// wake the parent, so this is a safety net.
const childPoll = 30 * time.Second

// childSummary is what the parent adds up of one child.
type childSummary struct {
	Phase   v1alpha1.NotificationPhase `json:"phase"`
	Summary v1alpha1.DeliverySummary   `json:"summary"`
	Start   *metav1.Time               `json:"start,omitempty"`
}

// summaryOf is what the parent adds up of child c.
func summaryOf(c *v1alpha1.Notification) childSummary {
	cs := childSummary{Phase: c.Status.Phase, Summary: c.Status.Summary}
	if c.Status.StartTime != nil {
		start := *c.Status.StartTime // c may be the cache's own object
		cs.Start = &start
	}
	if cs.Phase == "" {
		cs.Phase = v1alpha1.PhasePending
	}
	return cs
}

// maxStatusBytes bounds the estimated size of one Notification's delivery
// log (plan.Fits), well under the API server's request limit (about
// 1.5 MiB), so a status write can never fail for its size.
const maxStatusBytes = 512 << 10

// maxChildren and maxDeliveries are status.children's and
// status.deliveries' MaxItems.
const (
	maxChildren   = 1000
	maxDeliveries = 2000
)

// fanOut splits a Notification whose deliveries would not fit one object
// into child Notifications, each with an explicit share of the recipients,
// and from then on reports the sum of their summaries.
func (w *work) fanOut(ctx context.Context, in plan.Input, targets []Target) (time.Duration, error) {
	st := &w.n.Status
	if len(st.Children) == 0 {
		per := plan.ChildSize(len(targets), w.r.MaxDeliveriesPerObject, maxChildren, maxDeliveries)
		chunks := plan.Chunk(in, targets, per, maxStatusBytes)
		if len(chunks) > maxChildren {
			// status.children could not be written: say so once and for all.
			w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseFailed, Finished: true, Stalled: true, Reason: v1alpha1.ReasonInvalidSpec,
				Message: fmt.Sprintf("%d deliveries need %d child Notifications, more than the %d one Notification can have; split the recipients", len(targets), len(chunks), maxChildren)})
			return 0, nil
		}
		stuck, err := w.createChildren(ctx, chunks)
		if err != nil {
			return 0, err
		}
		if stuck {
			return w.requeue, nil
		}
		w.mustWrite = true
		st.Summary = v1alpha1.DeliverySummary{Total: int32(len(targets)), Pending: int32(len(targets))}
		w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseSending, Reason: v1alpha1.ReasonSending,
			Message: fmt.Sprintf("split into %d child Notifications", len(chunks))})
		return childPoll, nil
	}
	kids, err := w.children(ctx)
	if err != nil {
		return 0, err
	}
	var sum v1alpha1.DeliverySummary
	finished, started, expired := 0, false, true
	var missing []string
	for _, name := range st.Children {
		c, ok := kids[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		sum = sum.Plus(c.Summary)
		if c.Phase.Finished() {
			finished++
		}
		if c.Start != nil {
			started = true
			if st.StartTime == nil || c.Start.Before(st.StartTime) {
				t := *c.Start
				st.StartTime = &t
			}
		}
		if c.Summary.Failed > 0 && c.Phase != v1alpha1.PhaseExpired {
			expired = false
		}
	}
	// Children not yet planned count as pending against the total planned;
	// once every child left is finished, the share of children deleted
	// before they finished counts as failed: nobody can tell what they sent.
	planned := st.Summary.Total
	if planned > sum.Total {
		if len(missing) > 0 && finished == len(st.Children)-len(missing) {
			sum.Failed += planned - sum.Total
			expired = false
		} else {
			sum.Pending += planned - sum.Total
		}
		sum.Total = planned
	}
	st.Summary = sum
	if finished+len(missing) < len(st.Children) {
		sum.Pending = max(sum.Pending, 1)
		v := ledger.Judge(sum, false, true)
		v.Message = fmt.Sprintf("%d of %d children finished; %s", finished, len(st.Children), v.Message)
		w.verdict(v)
		return childPoll, nil
	}
	v := ledger.Judge(sum, expired, started)
	if len(missing) > 0 {
		v.Message = fmt.Sprintf("%s; child Notifications deleted before they finished: %s", v.Message, strings.Join(missing, ", "))
	}
	w.verdict(v)
	return 0, nil
}

// createChildren creates one child per chunk, Config.ChildCreators at a time, and
// lists them in status.children in order. stuck is true when a child's name
// is taken by a Notification this one does not control.
func (w *work) createChildren(ctx context.Context, chunks [][]v1alpha1.Recipient) (stuck bool, err error) {
	kids := make([]*v1alpha1.Notification, len(chunks))
	taken := make([]bool, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, w.r.ChildCreators))
	for i, rcpts := range chunks {
		kids[i] = w.child(i, rcpts)
		g.Go(func() error {
			err := w.r.Create(gctx, kids[i])
			if apierrors.IsAlreadyExists(err) {
				// Ours from a pass whose status write failed, or someone
				// else's object: only ours counts as a child.
				var existing metav1.PartialObjectMetadata
				existing.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Notification"))
				if err = w.r.APIReader.Get(gctx, client.ObjectKeyFromObject(kids[i]), &existing); err == nil && !metav1.IsControlledBy(&existing, w.n) {
					taken[i] = true
				}
			}
			if err != nil {
				return fmt.Errorf("creating child %s: %w", kids[i].Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	for i, c := range kids {
		if taken[i] {
			w.stuck(v1alpha1.ReasonInvalidSpec, fmt.Sprintf("cannot split the fan-out: the name %s of its child %d is taken by a Notification it does not control", c.Name, i), true)
			return true, nil
		}
	}
	for _, c := range kids {
		w.n.Status.Children = append(w.n.Status.Children, c.Name)
	}
	return false, nil
}

// children returns what each existing child says, by name: a finished
// child from what this process remembers of it (it finished the child, or
// read it once before), an unfinished one from the cache, and only a child
// in neither (finished by another process, created a moment ago, or
// deleted) read from the API server. The parent is woken each time a child
// finishes, so a read per child per wake-up would cost the API server
// children² reads over a fan-out; this costs none when every child was
// finished here. Only objects this Notification controls count: another
// object that carries the parent label or a child's name is not a child.
func (w *work) children(ctx context.Context) (map[string]childSummary, error) {
	n := w.n
	// Read only (summaryOf copies what it keeps): each child holds hundreds
	// of delivery records.
	var cached v1alpha1.NotificationList
	if err := w.r.List(ctx, &cached, client.InNamespace(n.Namespace), client.MatchingLabels{v1alpha1.LabelParent: parentLabel(n)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	live := make(map[string]*v1alpha1.Notification, len(cached.Items))
	for i := range cached.Items {
		if c := &cached.Items[i]; metav1.IsControlledBy(c, n) {
			live[c.Name] = c
		}
	}
	out := make(map[string]childSummary, len(n.Status.Children))
	for _, name := range n.Status.Children {
		if cs, ok := w.r.memory.finishedChild(n, name); ok {
			out[name] = cs
			continue
		}
		c := live[name]
		if c == nil {
			// Finished (so out of the cache), or created a moment ago.
			var full v1alpha1.Notification
			err := w.r.APIReader.Get(ctx, client.ObjectKey{Namespace: n.Namespace, Name: name}, &full)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !metav1.IsControlledBy(&full, n) {
				continue
			}
			c = &full
		}
		cs := summaryOf(c)
		if cs.Phase.Finished() {
			w.r.memory.rememberChild(keyOf(n), n.UID, name, cs)
		}
		out[name] = cs
	}
	return out, nil
}

// child builds the i-th child Notification.
func (w *work) child(i int, rcpts []v1alpha1.Recipient) *v1alpha1.Notification {
	n := w.n
	spec := *n.Spec.DeepCopy()
	spec.Recipients, spec.RecipientSelector, spec.IdempotencyKey = rcpts, nil, ""
	name := n.Name
	suffix := "-" + strconv.Itoa(i)
	if len(name)+len(suffix) > 253 {
		name = name[:253-len(suffix)]
	}
	c := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + suffix, Namespace: n.Namespace,
			Labels: map[string]string{v1alpha1.LabelParent: parentLabel(n)},
		},
		Spec: spec,
	}
	_ = controllerutil.SetControllerReference(n, c, w.r.Scheme())
	return c
}

// isChild reports whether n is a child of a fan-out: it carries the parent
// label and a Notification controls it. The label alone, which anyone can
// set, makes nothing a child.
func isChild(n metav1.Object) bool {
	if n.GetLabels()[v1alpha1.LabelParent] == "" {
		return false
	}
	ref := metav1.GetControllerOf(n)
	return ref != nil && ref.Kind == "Notification" && ref.APIVersion == v1alpha1.GroupVersion.String()
}

// parentLabel is the parent's name, or its uid when the name is too long for a label value.
func parentLabel(n metav1.Object) string {
	if len(n.GetName()) <= 63 {
		return n.GetName()
	}
	return string(n.GetUID())
}
