// Package manager assembles Herald's controller manager: the scheme, the cache
// (finished Notifications left out), health probes, metrics and every
// controller. cmd/ (the binary) and cmd/herald-dev (the local environment) both
// start it from here, so they run the same thing.
package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/fields"
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
	"github.com/herald-dev/herald/internal/controller"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/journal"
	"github.com/herald-dev/herald/internal/scheme"
	"github.com/herald-dev/herald/senders/egress"
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
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election
	// (zero: controller-runtime's 15s, 10s, 2s). A leader that stops
	// gracefully releases the Lease, so these matter only after a crash.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// DrainTimeout bounds a graceful stop: sends in flight finish and
	// every outcome is written to status before the manager lets go.
	DrainTimeout time.Duration
	// Namespace is where the manager runs; ClusterChannelProvider Secrets live there.
	Namespace string
	// DefaultTTLAfterFinished applies to Notifications that set no ttlSecondsAfterFinished.
	DefaultTTLAfterFinished time.Duration
	// DedupWindow is how long an idempotencyKey suppresses repeats.
	DedupWindow time.Duration
	// OutboxDir is where log-type providers append messages.
	OutboxDir string
	// EgressAllowCIDRs are comma-separated ranges senders may reach besides
	// public addresses (loopback, private, link-local... are refused
	// otherwise): an in-cluster SMTP relay or proxy; 127.0.0.0/8 for
	// make dev and tests.
	EgressAllowCIDRs string
	// AllowInsecureSkipVerify lets providers skip certificate checks
	// (spec.tls.insecureSkipVerify); otherwise such a provider is Stalled.
	AllowInsecureSkipVerify bool
	// QPS and Burst bound the manager's own API client.
	QPS   float32
	Burst int
	// MaxDeliveriesPerObject bounds one Notification's delivery log; larger
	// fan-outs are split into children of that many deliveries (more when
	// that would make over 1,000 children). 0: chosen by the journal, see
	// DeliveriesPerObject.
	MaxDeliveriesPerObject int
	// NotificationWorkers is how many Notifications are reconciled at once;
	// reconciles wait mostly on the API server, so more than the cores.
	NotificationWorkers int
	// MaxUnrecordedSends bounds, per provider, the messages sent but not yet
	// recorded in status: what a crash can send twice.
	MaxUnrecordedSends int
	// StatusFlushDelay holds a status write back so outcomes arriving
	// together share it.
	StatusFlushDelay time.Duration
	// StatusHold: see controller.Outcomes.Hold; only with a journal.
	StatusHold time.Duration
	// MaxPending: see controller.Config.
	MaxPending time.Duration
	// MetricsNamespaceLabelLimit: how many namespaces get their own
	// namespace label on herald_deliveries_total; the rest share "other".
	MetricsNamespaceLabelLimit int
	// AuditLog emits one record per finished delivery on the "audit"
	// logger (JSON with the production encoder), or on AuditLogger when set.
	AuditLog    bool
	AuditLogger logr.Logger
	// NormalEvents records a Normal Event for every Notification that
	// finishes well, not only for those to several recipients.
	NormalEvents bool
	// InboundAddr is where the inbound server (receipts, STOP replies,
	// Receivers, unsubscribe links) listens; "" or "0" disables it.
	InboundAddr string
	// InboundCertDir holds the inbound server's tls.crt and tls.key; empty
	// serves plain HTTP (TLS ends at an Ingress).
	InboundCertDir string
	// InboundPublicURL is how providers and people reach the inbound
	// server; without it no receipts are asked for.
	InboundPublicURL string
	// InboundMaxBodyBytes, InboundRatePerSecond and InboundBurst limit
	// inbound requests (per source for the rate).
	InboundMaxBodyBytes  int64
	InboundRatePerSecond float64
	InboundBurst         int
	// UnsubscribeKey signs one-click unsubscribe links (at least 32
	// bytes, the same on every replica); without it, or without
	// InboundPublicURL, emails carry no List-Unsubscribe.
	UnsubscribeKey []byte
	// UnsubscribeLinkTTL is how long a link works (0: 60 days).
	UnsubscribeLinkTTL time.Duration
	// JournalDir, when set, is where accepted sends are journaled until
	// status records them (internal/journal): a crash then re-sends only
	// what was in flight. Use a directory that outlives the process (an
	// emptyDir), one per replica.
	JournalDir string
	// PprofAddr serves net/http/pprof for profiling; empty or "0" disables it.
	PprofAddr string
	// Clock is injectable for tests; nil means the real clock.
	Clock clock.WithTicker
	// SkipControllerNameValidation lets one process build more than one
	// manager (tests that restart it); controller names are otherwise
	// checked to be unique process-wide.
	SkipControllerNameValidation bool
}

// DeliveriesPerObject is MaxDeliveriesPerObject or, when that is 0 or
// less, the size that suits the journal setting. With a journal a send does
// not wait for the status write that records it, and a child's outcomes
// wait for one another (StatusHold) to share one write, so fewer, larger
// children cost the API server least: 350, about the most whose delivery
// log at its longest still fits the status bound (plan.Fits). Without one,
// sends wait for those writes (--max-unrecorded-sends) and a smaller
// object's write is quicker: 32. (10,000-user fan-outs on 2 cores:
// docs/benchmarks.md.)
func (o Options) DeliveriesPerObject() int {
	switch {
	case o.MaxDeliveriesPerObject > 0:
		return o.MaxDeliveriesPerObject
	case o.JournalDir != "":
		return 350
	}
	return 32
}

// childCreators is how many children of a fan-out are created at once:
// with a journal, 16, so children start sending sooner; without one, one at
// a time, since concurrent creates slow the status writes that sends wait
// for (1,125 against 652 messages/s with 4 at once, no journal).
func (o Options) childCreators() int {
	if o.JournalDir != "" {
		return 16
	}
	return 1
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
		MaxDeliveriesPerObject:  0,
		NotificationWorkers:     16,
		StatusFlushDelay:        20 * time.Millisecond,
		StatusHold:              time.Second,
		MaxUnrecordedSends:      dispatch.DefaultMaxUnrecorded,
		DrainTimeout:            20 * time.Second,
		MaxPending:              time.Hour,

		MetricsNamespaceLabelLimit: 100,
		AuditLog:                   true,
	}
}

// LeaderElectionID names the Lease the replicas compete for.
const LeaderElectionID = "herald.notify.herald.dev"

// Manager is controller-runtime's manager with a graceful Start.
type Manager struct {
	ctrl.Manager
	dispatcher   *dispatch.Dispatcher
	outcomes     *controller.Outcomes
	receipts     *controller.Receipts // nil without an inbound server
	drainTimeout time.Duration
	// Inbound is the inbound server; nil when disabled.
	Inbound *inbound.Server
}

// Start runs the manager until ctx ends, then stops gracefully, so a
// rollout sends nothing twice and loses nothing: no new send starts, sends
// in flight finish and every outcome is written to status (bounded by
// DrainTimeout); only then do the controllers stop and the leader Lease is
// released, for the other replica to take over at once. Jobs that never
// started are left pending in status for it.
func (m *Manager) Start(ctx context.Context) error {
	inner, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- m.Manager.Start(inner) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log := ctrl.Log.WithName("shutdown")
	start := time.Now()
	dctx, cancel := context.WithTimeout(context.Background(), m.drainTimeout)
	left := m.dispatcher.Drain(dctx)
	for (m.outcomes.Len() > 0 || m.receipts.Len() > 0) && dctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if left > 0 || m.outcomes.Len() > 0 {
		log.Info("drain timed out: some outcomes are not in status and may be sent again", "unrecordedSends", left, "bufferedOutcomes", m.outcomes.Len(), "after", time.Since(start))
	} else {
		log.Info("drained: every outcome is in status", "after", time.Since(start))
	}
	stop()
	return <-done
}

// New builds a manager with every controller registered. Start it with mgr.Start(ctx).
func New(cfg *rest.Config, o Options) (*Manager, error) {
	cfg = rest.CopyConfig(cfg)
	if o.QPS > 0 {
		cfg.QPS, cfg.Burst = o.QPS, o.Burst
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	allow, err := egress.Parse(o.EgressAllowCIDRs)
	if err != nil {
		return nil, fmt.Errorf("--egress-allow-cidrs: %w", err)
	}
	// Finished Notifications are history: keeping them out of the informer
	// cache is what stops memory growing with it. They are read, when needed,
	// straight from the API server.
	unfinished, err := fields.ParseSelector(v1alpha1.UnfinishedSelector())
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme.New(),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		PprofBindAddress:              o.PprofAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.LeaseDuration),
		RenewDeadline:                 nonZero(o.RenewDeadline),
		RetryPeriod:                   nonZero(o.RetryPeriod),
		Controller:                    config.Controller{SkipNameValidation: &o.SkipControllerNameValidation},
		Cache: cache.Options{
			// Nothing reads managedFields; on a Notification they are a
			// good part of the object.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&v1alpha1.Notification{}: {Field: unfinished},
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
	outcomes := controller.NewOutcomes(o.StatusFlushDelay)
	if o.JournalDir != "" {
		outcomes.Hold = o.StatusHold
	}
	circuits := controller.NewCircuits()
	j, report, err := openJournal(o.JournalDir, outcomes)
	if err != nil {
		return nil, err
	}
	d := dispatch.New(dispatch.Options{Reporter: report, Clock: o.Clock, MaxUnrecorded: o.MaxUnrecordedSends, OnCircuit: circuits.Changed})
	outcomes.Recorded = d.Recorded
	if err := mgr.Add(manager.RunnableFunc(d.Run)); err != nil {
		return nil, err
	}
	if j != nil {
		// A journaled send is recorded for the crash bound; status still
		// has to hold it before a graceful stop ends (Start's drain).
		j.Durable = d.Recorded
		outcomes.Recorded = func(x dispatch.Outcome) {
			d.Recorded(x)
			j.Recorded(x)
		}
		if err := mgr.Add(everyReplica(j.Run)); err != nil {
			return nil, err
		}
	}
	var audit logr.Logger
	if o.AuditLog {
		audit = o.AuditLogger
		if audit.GetSink() == nil {
			audit = ctrl.Log.WithName("audit")
		}
	}
	unsub, err := unsubscribeSigner(o)
	if err != nil {
		return nil, err
	}
	if err := controller.Setup(mgr, controller.Config{
		Audit:                      audit,
		Dispatcher:                 d,
		Circuits:                   circuits,
		Outcomes:                   outcomes,
		MaxDeliveriesPerObject:     o.DeliveriesPerObject(),
		ChildCreators:              o.childCreators(),
		Workers:                    o.NotificationWorkers,
		NormalEvents:               o.NormalEvents,
		MetricsNamespaceLabelLimit: o.MetricsNamespaceLabelLimit,
		MaxPending:                 o.MaxPending,
		Namespace:                  o.Namespace,
		DefaultTTLAfterFinished:    o.DefaultTTLAfterFinished,
		DedupWindow:                o.DedupWindow,
		OutboxDir:                  o.OutboxDir,
		Egress:                     allow,
		AllowInsecureTLS:           o.AllowInsecureSkipVerify,
		Clock:                      o.Clock,
		InboundPublicURL:           publicURL(o),
		Unsubscribe:                unsub,
	}); err != nil {
		return nil, err
	}
	srv, receipts, err := setupInbound(mgr, o, unsub)
	if err != nil {
		return nil, err
	}
	drain := o.DrainTimeout
	if drain <= 0 {
		drain = DefaultOptions().DrainTimeout
	}
	return &Manager{Manager: mgr, dispatcher: d, outcomes: outcomes, receipts: receipts, Inbound: srv, drainTimeout: drain}, nil
}

func nonZero(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}

// openJournal opens the journal in dir, when set, and feeds what it holds
// to outcomes before anything is sent: the first reconcile of each
// Notification folds it into status, so those deliveries are not sent
// again. It returns the dispatcher's Reporter: outcomes.Report, journaling
// first when there is a journal.
func openJournal(dir string, outcomes *controller.Outcomes) (*journal.Journal, dispatch.Reporter, error) {
	if dir == "" {
		return nil, outcomes.Report, nil
	}
	j, replay, err := journal.Open(dir, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("--journal-dir: %w", err)
	}
	for _, r := range replay {
		outcomes.Report(r)
	}
	if len(replay) > 0 {
		ctrl.Log.WithName("journal").Info("replaying sends accepted before a restart and not yet in status", "outcomes", len(replay))
	}
	return j, func(x dispatch.Outcome) {
		j.Append(x) // first: its line is in the file before status can record it
		outcomes.Report(x)
	}, nil
}

// everyReplica is a runnable that runs whether or not this replica leads,
// and so stops after those that need the lead (the dispatcher).
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
