package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// follower prints each delivery of a Notification and of its children
// once, when it ends.
type follower struct {
	out     io.Writer
	printed map[string]bool
}

func newFollower(out io.Writer) *follower {
	return &follower{out: out, printed: map[string]bool{}}
}

// show prints the deliveries of n that ended since the last call, and
// why n is stalled when it newly is: waiting on, the step should say what
// a person has to fix.
func (f *follower) show(n *v1alpha1.Notification) {
	if c := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && !n.Status.Phase.Finished() {
		key := n.Name + "/stalled/" + c.Reason + ": " + c.Message
		if !f.printed[key] {
			f.printed[key] = true
			fmt.Fprintf(f.out, "notification/%s is stalled, %s: %s (fix it, or it fails when it expires)\n", n.Name, c.Reason, c.Message)
		}
	}
	for _, d := range n.Status.Deliveries {
		key := n.Name + "/" + d.ID
		if !d.State.Terminal() || f.printed[key] {
			continue
		}
		f.printed[key] = true
		fmt.Fprintln(f.out, deliveryLine(d))
	}
}

// deliveryLine is one delivery: channel, masked recipient, provider,
// state, attempts, reason and the provider's (masked) message.
func deliveryLine(d v1alpha1.Delivery) string {
	line := fmt.Sprintf("%-8s %-32s %-34s %-10s attempts=%d", d.Channel, recipient(d), orNone(d.Provider), d.State, d.Attempts)
	if d.Reason != "" {
		line += " " + d.Reason
	}
	if d.Message != "" {
		line += ": " + d.Message
	}
	return line
}

// recipient shows who a delivery is for: the user and the masked address,
// or the masked address alone.
func recipient(d v1alpha1.Delivery) string {
	if d.Address != "" && !strings.Contains(d.Recipient, d.Address) {
		return d.Recipient + " (" + d.Address + ")"
	}
	return d.Recipient
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// errTimeout is returned when the wait's context ends first.
var errTimeout = errors.New("timed out")

// follow watches Notification ns/name and its children until it finishes,
// printing deliveries as they end, and returns the finished Notification.
// A watch that closes is opened again from a fresh read, so a long wait
// survives the API server ending watches.
func follow(ctx context.Context, c client.WithWatch, ns, name string, f *follower) (*v1alpha1.Notification, error) {
	var last *v1alpha1.Notification
	for {
		n := &v1alpha1.Notification{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, n); err != nil {
			if ctx.Err() != nil {
				return last, timeoutError(name, last)
			}
			if apierrors.IsNotFound(err) && last != nil {
				return last, fmt.Errorf("notification/%s was deleted before it finished (phase %s)", name, orNone(string(last.Status.Phase)))
			}
			return nil, err
		}
		last = n
		childRV, err := f.children(ctx, c, n)
		if err != nil {
			if ctx.Err() != nil {
				return last, timeoutError(name, last)
			}
			return last, err
		}
		f.show(n)
		if n.Status.Phase.Finished() {
			return n, nil
		}
		done, err := f.watch(ctx, c, n, childRV, &last)
		if done || err != nil {
			return last, err
		}
		if ctx.Err() != nil {
			return last, timeoutError(name, last)
		}
	}
}

// children shows the deliveries of n's children and returns the list's
// resource version to watch them from.
func (f *follower) children(ctx context.Context, c client.Client, n *v1alpha1.Notification) (string, error) {
	var list v1alpha1.NotificationList
	if err := c.List(ctx, &list, client.InNamespace(n.Namespace), client.MatchingLabels{v1alpha1.LabelParent: n.Name}); err != nil {
		return "", err
	}
	for i := range list.Items {
		f.show(&list.Items[i])
	}
	return list.ResourceVersion, nil
}

// watch follows n and its children from the versions read; it reports done
// when n finished (its children's last deliveries shown by a final read),
// and returns false without error when a watch closed and must be reopened.
func (f *follower) watch(ctx context.Context, c client.WithWatch, n *v1alpha1.Notification, childRV string, last **v1alpha1.Notification) (bool, error) {
	self, err := c.Watch(ctx, &v1alpha1.NotificationList{}, &client.ListOptions{Namespace: n.Namespace,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", n.Name),
		Raw:           &metav1.ListOptions{ResourceVersion: n.ResourceVersion}})
	if err != nil {
		return false, ignoreDone(ctx, err)
	}
	defer self.Stop()
	kids, err := c.Watch(ctx, &v1alpha1.NotificationList{}, &client.ListOptions{Namespace: n.Namespace,
		LabelSelector: labels.SelectorFromSet(labels.Set{v1alpha1.LabelParent: n.Name}),
		Raw:           &metav1.ListOptions{ResourceVersion: childRV}})
	if err != nil {
		return false, ignoreDone(ctx, err)
	}
	defer kids.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-self.ResultChan():
			if !ok || ev.Type == watch.Error {
				return false, nil
			}
			cur, isNotif := ev.Object.(*v1alpha1.Notification)
			if !isNotif {
				continue
			}
			if ev.Type == watch.Deleted {
				if (*last).Status.Phase.Finished() {
					return true, nil
				}
				return true, fmt.Errorf("notification/%s was deleted before it finished (phase %s)", n.Name, orNone(string((*last).Status.Phase)))
			}
			*last = cur
			f.show(cur)
			if cur.Status.Phase.Finished() {
				// The parent finishes after reading its finished children:
				// one more read shows what the child watch has not yet.
				if _, err := f.children(ctx, c, cur); err != nil && ctx.Err() == nil {
					return true, err
				}
				return true, nil
			}
		case ev, ok := <-kids.ResultChan():
			if !ok || ev.Type == watch.Error {
				return false, nil
			}
			if child, isNotif := ev.Object.(*v1alpha1.Notification); isNotif {
				f.show(child)
			}
		}
	}
}

// ignoreDone drops an error caused by the wait's end; the caller reports
// the timeout.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// timeoutError says how far the Notification got.
func timeoutError(name string, n *v1alpha1.Notification) error {
	where := "it was not read"
	if n != nil {
		s := n.Status.Summary
		where = fmt.Sprintf("phase %s, %d of %d deliveries finished", orNone(string(n.Status.Phase)), s.Total-s.Pending, s.Total)
		if reason := pendingReason(n); reason != "" {
			where += ", " + reason
		}
	}
	return withCode(ExitTimeout, fmt.Errorf("%w waiting for notification/%s: %s", errTimeout, name, where))
}

// pendingReason is why an unfinished Notification waits, from its
// Reconciling or Stalled condition.
func pendingReason(n *v1alpha1.Notification) string {
	for _, t := range []string{v1alpha1.ConditionStalled, v1alpha1.ConditionReconciling} {
		if c := meta.FindStatusCondition(n.Status.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// elapsed is a short duration for humans: 1.2s, 3m4s.
func elapsed(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
