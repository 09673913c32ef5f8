package controller

import (
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
)

// recordLearned adds a dead device or an unsubscribed address to the user's
// status. Only hashes are stored.
func (r *NotificationReconciler) recordLearned(ctx context.Context, ns string, l learnedAddress, now time.Time) error {
	return learner{Client: r.Client, APIReader: r.APIReader}.record(ctx, ns, l, now)
}

// learner writes what providers taught about a user's addresses to the
// UserPreference status: the pipeline's failed sends, receipts (bounces,
// spam reports, unsubscribes) and STOP/START replies.
type learner struct {
	client.Client
	APIReader client.Reader
}

// record adds a dead device or an unsubscribed address; only hashes are stored.
func (lr learner) record(ctx context.Context, ns string, l learnedAddress, now time.Time) error {
	hash := policy.HashToken(l.raw)
	return lr.update(ctx, ns, l.user, func(u *v1alpha1.UserPreference) bool {
		t := metav1.NewTime(now)
		switch l.channel {
		case v1alpha1.ChannelPush:
			if slices.ContainsFunc(u.Status.DeadDevices, func(d v1alpha1.DeadDevice) bool { return d.TokenHash == hash }) {
				return false
			}
			u.Status.DeadDevices = append(u.Status.DeadDevices, v1alpha1.DeadDevice{TokenHash: hash, Reason: l.reason, Time: t})
		default:
			if slices.ContainsFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool { return a.AddressHash == hash }) {
				return false
			}
			if len(u.Status.Unsubscribed) >= maxUnsubscribed {
				u.Status.Unsubscribed = u.Status.Unsubscribed[1:] // the oldest is likely an address the user no longer has
			}
			u.Status.Unsubscribed = append(u.Status.Unsubscribed, v1alpha1.UnsubscribedAddress{Channel: l.channel, AddressHash: hash, Reason: l.reason, Time: t})
		}
		return true
	})
}

// maxUnsubscribed is status.unsubscribed's MaxItems.
const maxUnsubscribed = 16

// forget removes an unsubscribed address (a START reply).
func (lr learner) forget(ctx context.Context, ns, user string, ch v1alpha1.Channel, raw string) error {
	hash := policy.HashToken(raw)
	return lr.update(ctx, ns, user, func(u *v1alpha1.UserPreference) bool {
		n := len(u.Status.Unsubscribed)
		u.Status.Unsubscribed = slices.DeleteFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool {
			return a.AddressHash == hash && a.Channel == ch
		})
		return len(u.Status.Unsubscribed) != n
	})
}

// update applies change to the user's status, read from the API server,
// and patches it under an optimistic lock, retrying conflicts. A user
// that is gone is not an error.
func (lr learner) update(ctx context.Context, ns, name string, change func(*v1alpha1.UserPreference) bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var u v1alpha1.UserPreference
		if err := lr.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &u); err != nil {
			return client.IgnoreNotFound(err)
		}
		before := u.DeepCopy()
		if !change(&u) {
			return nil
		}
		return lr.Status().Patch(ctx, &u, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}
