package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ledger"
	"github.com/herald-dev/herald/internal/plan"
)

// childPoll is how often a parent refreshes its children's summary.
const childPoll = 2 * time.Second

// fanOut splits a Notification whose deliveries would not fit one object
// into child Notifications, each with an explicit share of the recipients,
// and from then on reports the sum of their summaries.
func (w *work) fanOut(ctx context.Context, in plan.Input, targets []Target) (time.Duration, error) {
	n, st := w.n, &w.n.Status
	if len(st.Children) == 0 {
		chunks := chunk(in, targets, w.r.MaxDeliveriesPerObject)
		for i, rcpts := range chunks {
			child := w.child(i, rcpts)
			if err := w.r.Create(ctx, child); err != nil && !apierrors.IsAlreadyExists(err) {
				return 0, fmt.Errorf("creating child %s: %w", child.Name, err)
			}
			st.Children = append(st.Children, child.Name)
		}
		st.Summary = v1alpha1.DeliverySummary{Total: int32(len(targets)), Pending: int32(len(targets))}
		w.verdict(ledger.Verdict{Phase: v1alpha1.PhaseSending, Reason: v1alpha1.ReasonSending,
			Message: fmt.Sprintf("split into %d child Notifications", len(chunks))})
		return childPoll, nil
	}
	var list v1alpha1.NotificationList
	if err := w.r.APIReader.List(ctx, &list, client.InNamespace(n.Namespace), client.MatchingLabels{v1alpha1.LabelParent: parentLabel(n)}); err != nil {
		return 0, err
	}
	var sum v1alpha1.DeliverySummary
	finished, started, expired := 0, false, true
	for _, c := range list.Items {
		if !metav1.IsControlledBy(&c, n) {
			continue
		}
		sum = sum.Plus(c.Status.Summary)
		if c.Status.Phase.Finished() {
			finished++
		}
		if c.Status.StartTime != nil {
			started = true
			if st.StartTime == nil || c.Status.StartTime.Before(st.StartTime) {
				t := *c.Status.StartTime
				st.StartTime = &t
			}
		}
		if c.Status.Summary.Failed > 0 && c.Status.Phase != v1alpha1.PhaseExpired {
			expired = false
		}
	}
	// Children not yet planned count as pending against the total planned.
	if st.Summary.Total > sum.Total {
		sum.Pending += st.Summary.Total - sum.Total
		sum.Total = st.Summary.Total
	}
	st.Summary = sum
	if finished < len(st.Children) {
		sum.Pending = max(sum.Pending, 1)
		v := ledger.Judge(sum, false, true)
		v.Message = fmt.Sprintf("%d of %d children finished; %s", finished, len(st.Children), v.Message)
		w.verdict(v)
		return childPoll, nil
	}
	w.verdict(ledger.Judge(sum, expired, started))
	return 0, nil
}

// chunk groups recipients so each group's deliveries fit one object. Targets
// of one recipient share the ID prefix before the first "/" and are adjacent.
func chunk(in plan.Input, targets []Target, max int) [][]v1alpha1.Recipient {
	var out [][]v1alpha1.Recipient
	var cur []v1alpha1.Recipient
	size := 0
	for i := 0; i < len(targets); {
		prefix, _, _ := strings.Cut(targets[i].ID, "/")
		j := i
		for j < len(targets) && strings.HasPrefix(targets[j].ID, prefix+"/") {
			j++
		}
		if size > 0 && size+(j-i) > max {
			out, cur, size = append(out, cur), nil, 0
		}
		cur = append(cur, recipientOf(in, prefix, targets[i]))
		size += j - i
		i = j
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func recipientOf(in plan.Input, prefix string, t Target) v1alpha1.Recipient {
	if idx, err := strconv.Atoi(strings.TrimPrefix(prefix, "r")); err == nil && strings.HasPrefix(prefix, "r") && idx < len(in.Recipients) {
		return in.Recipients[idx]
	}
	return v1alpha1.Recipient{User: t.UserName}
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

// parentLabel is the parent's name, or its uid when the name is too long for a label value.
func parentLabel(n *v1alpha1.Notification) string {
	if len(n.Name) <= 63 {
		return n.Name
	}
	return string(n.UID)
}
