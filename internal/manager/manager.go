// Package manager assembles Herald's controller manager: the scheme, the cache
// (finished Notifications left out), health probes, metrics and every
// controller. cmd/ (the binary) and cmd/herald-dev (the local environment) both
// start it from here, so they run the same thing.
package manager

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/scheme"
)

// Options are the manager's settings; cmd/ binds each to a flag.
type Options struct {
	// MetricsAddr serves Prometheus metrics ("0" disables).
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz ("0" disables).
	ProbeAddr string
	// LeaderElection makes one replica active at a time.
	LeaderElection          bool
	LeaderElectionNamespace string
	// Namespace is where the manager runs; ClusterChannelProvider Secrets live there.
	Namespace string
	// DefaultTTLAfterFinished applies to Notifications that set no ttlSecondsAfterFinished.
	DefaultTTLAfterFinished time.Duration
	// DedupWindow is how long an idempotencyKey suppresses repeats.
	DedupWindow time.Duration
	// OutboxDir is where log-type providers append messages.
	OutboxDir string
	// QPS and Burst bound the manager's own API client.
	QPS   float32
	Burst int
	// MaxDeliveriesPerObject bounds one Notification's delivery log; larger
	// fan-outs are split into children.
	MaxDeliveriesPerObject int
	// NotificationWorkers is how many Notifications are reconciled at once;
	// reconciles wait mostly on the API server, so more than the cores.
	NotificationWorkers int
	// StatusFlushDelay holds a status write back so outcomes arriving
	// together share it.
	StatusFlushDelay time.Duration
	// Clock is injectable for tests; nil means the real clock.
	Clock clock.WithTicker
	// SkipControllerNameValidation lets one process build more than one
	// manager (tests that restart it); controller names are otherwise
	// checked to be unique process-wide.
	SkipControllerNameValidation bool
}

// DefaultOptions are sized for the design's targets (see docs/operations.md).
func DefaultOptions() Options {
	return Options{
		MetricsAddr:             ":8080",
		ProbeAddr:               ":8081",
		Namespace:               "herald-system",
		DefaultTTLAfterFinished: 24 * time.Hour,
		DedupWindow:             24 * time.Hour,
		QPS:                     200,
		Burst:                   400,
		MaxDeliveriesPerObject:  1000,
		NotificationWorkers:     16,
		StatusFlushDelay:        20 * time.Millisecond,
	}
}

// LeaderElectionID names the Lease the replicas compete for.
const LeaderElectionID = "herald.notify.herald.dev"

// New builds a manager with every controller registered. Start it with mgr.Start(ctx).
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	if o.QPS > 0 {
		cfg.QPS, cfg.Burst = o.QPS, o.Burst
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	// Finished Notifications are history: keeping them out of the informer
	// cache is what stops memory growing with it. They are read, when needed,
	// straight from the API server.
	unfinished, err := labels.NewRequirement(v1alpha1.LabelFinished, selection.NotEquals, []string{"true"})
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme.New(),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &o.SkipControllerNameValidation},
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				&v1alpha1.Notification{}: {Label: labels.NewSelector().Add(*unfinished)},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	dispatch.RegisterMetrics()
	outcomes := controllers.NewOutcomes(o.StatusFlushDelay)
	d := dispatch.New(dispatch.Options{Reporter: outcomes.Report, Clock: o.Clock})
	if err := mgr.Add(manager.RunnableFunc(d.Run)); err != nil {
		return nil, err
	}
	if err := controllers.Setup(mgr, controllers.Config{
		Dispatcher:              d,
		Outcomes:                outcomes,
		MaxDeliveriesPerObject:  o.MaxDeliveriesPerObject,
		Workers:                 o.NotificationWorkers,
		Namespace:               o.Namespace,
		DefaultTTLAfterFinished: o.DefaultTTLAfterFinished,
		DedupWindow:             o.DedupWindow,
		OutboxDir:               o.OutboxDir,
		Clock:                   o.Clock,
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}
