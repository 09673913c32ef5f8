package controller

import (
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/unsubscribe"
)

// unsubscribeURL is the one-click unsubscribe link for an email to a user
// in a category, or "": critical messages override opt-outs, so they
// offer none, and inline addresses have no preferences to record it on.
func (w *work) unsubscribeURL(t Target, category string) string {
	if w.r.Unsubscribe == nil || t.Channel != v1alpha1.ChannelEmail || t.User == nil || category == "" ||
		w.n.Spec.Priority == v1alpha1.PriorityCritical {
		return ""
	}
	return w.r.Unsubscribe.URL(w.n.Namespace, t.UserName, category, w.now)
}

// optOut records a one-click unsubscribe on the user's status.
func (lr learner) optOut(ctx context.Context, c unsubscribe.Claims, now time.Time) error {
	return lr.update(ctx, c.Namespace, c.User, func(u *v1alpha1.UserPreference) bool {
		if slices.ContainsFunc(u.Status.OptedOut, func(o v1alpha1.LearnedOptOut) bool { return o.Category == c.Category }) {
			return false
		}
		if len(u.Status.OptedOut) >= maxLearnedOptOuts {
			return false // the schema's bound; spec.optOut is the place for more
		}
		u.Status.OptedOut = append(u.Status.OptedOut, v1alpha1.LearnedOptOut{Category: c.Category,
			Reason: v1alpha1.ReasonOneClickUnsubscribe, Time: metav1.NewTime(now)})
		return true
	})
}

// maxLearnedOptOuts is status.optedOut's MaxItems.
const maxLearnedOptOuts = 64

// unsubscribeRoutes are the links' routes on the inbound server.
func unsubscribeRoutes(s *unsubscribe.Signer, l learner, now func() time.Time) []inbound.Route {
	if s == nil {
		return nil
	}
	u := &inbound.Unsubscribe{Signer: s, Now: now, OptOut: func(ctx context.Context, c unsubscribe.Claims) error {
		return l.optOut(ctx, c, now())
	}}
	return u.Routes()
}
