// Package controller holds one thin reconciler per kind: get the object, ask
// the packages that decide (internal/render, internal/policy,
// internal/dispatch, senders/registry), and write status through one path.
package controller

import (
	"time"

	"github.com/go-logr/logr"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/render"
	"github.com/herald-dev/herald/internal/unsubscribe"
	"github.com/herald-dev/herald/senders/egress"
)

// Config is what the reconcilers share.
type Config struct {
	// Namespace holds the Secrets of ClusterChannelProviders.
	Namespace               string
	DefaultTTLAfterFinished time.Duration
	DedupWindow             time.Duration
	OutboxDir               string
	// AllowInsecureTLS lets providers' tls.insecureSkipVerify take effect.
	AllowInsecureTLS bool
	// Egress says where senders may connect (nil: no private ranges).
	Egress *egress.Policy
	Clock  clock.WithTicker
	// MaxDeliveriesPerObject bounds the deliveries one Notification records;
	// a larger fan-out is split into child Notifications.
	MaxDeliveriesPerObject int
	// ChildCreators is how many children of a fan-out are created at once.
	ChildCreators int
	// MaxPending is how long a Notification may wait for something that is
	// not there (Template, params, a Ready provider) after it was due before
	// it fails with that reason; its expiry ends the wait sooner. 0: only
	// the expiry.
	MaxPending time.Duration
	// NormalEvents emits a Normal Event for every Notification that
	// finishes well; by default only fan-outs get one (Warnings always).
	NormalEvents bool
	// Workers is how many Notifications are reconciled at once.
	Workers int
	// Audit receives one record per delivery that ends, once its end is
	// written to status (see audit.go); the zero Logger discards them.
	Audit logr.Logger
	// MetricsNamespaceLabelLimit is how many namespaces get their own
	// namespace label on herald_deliveries_total; the rest share "other".
	MetricsNamespaceLabelLimit int
	// Outcomes receives what the Dispatcher reports.
	Outcomes *Outcomes
	// InboundPublicURL is the inbound server's public URL ("" when there
	// is none): providers that can send receipts are told where to.
	InboundPublicURL string
	// Unsubscribe signs one-click unsubscribe links; nil adds none.
	Unsubscribe *unsubscribe.Signer
	// Dispatcher holds one send queue per provider: provider reconcilers
	// keep it in step with the providers, the Notification reconciler submits to it.
	Dispatcher *dispatch.Dispatcher
	// Circuits brings the Dispatcher's circuit changes to the provider
	// reconcilers (nil: they are read on each reconcile only).
	Circuits *Circuits
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, cfg Config) error {
	overdue.Store(&overdueSource{reader: mgr.GetCache(), clock: cfg.Clock})
	sw := statusWriter{Client: mgr.GetClient(), Events: mgr.GetEventRecorder("herald")}
	quiet := sw
	quiet.quietFirstReady = true
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&NotificationReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: sw.Events, Config: cfg,
			Outcomes: cfg.Outcomes, Templates: render.NewCache(render.DefaultCacheSize),
			Sweeper:  &Sweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: cfg.Clock, DefaultTTL: cfg.DefaultTTLAfterFinished},
			nsLabels: newNamespaceLabels(cfg.MetricsNamespaceLabelLimit),
			users:    &userStore{cache: mgr.GetCache()},
		},
		&TemplateReconciler{statusWriter: sw},
		&UserPreferenceReconciler{statusWriter: quiet},
		providerControllers{statusWriter: sw, Config: cfg},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
