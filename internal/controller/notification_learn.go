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
	hash := policy.HashToken(l.raw)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var u v1alpha1.UserPreference
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: l.user}, &u); err != nil {
			return client.IgnoreNotFound(err)
		}
		before := u.DeepCopy()
		t := metav1.NewTime(now)
		switch l.channel {
		case v1alpha1.ChannelPush:
			if slices.ContainsFunc(u.Status.DeadDevices, func(d v1alpha1.DeadDevice) bool { return d.TokenHash == hash }) {
				return nil
			}
			u.Status.DeadDevices = append(u.Status.DeadDevices, v1alpha1.DeadDevice{TokenHash: hash, Reason: l.reason, Time: t})
		default:
			if slices.ContainsFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool { return a.AddressHash == hash }) {
				return nil
			}
			u.Status.Unsubscribed = append(u.Status.Unsubscribed, v1alpha1.UnsubscribedAddress{Channel: l.channel, AddressHash: hash, Reason: l.reason, Time: t})
		}
		return r.Status().Patch(ctx, &u, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}
