package controller

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
)

// OtherNamespace is the namespace label of Notifications beyond
// Config.MetricsNamespaceLabelLimit.
const OtherNamespace = "other"

var (
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_deliveries_total",
		Help: "Deliveries that reached a terminal state, by the Notification's namespace (bounded: see --metrics-namespace-label-limit), channel, provider type and state.",
	}, []string{"namespace", "channel", "provider_type", "state"})
	createdTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_notifications_created_total",
		Help: "Notifications whose first status was written: those the manager took up.",
	})
	finishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_notifications_finished_total",
		Help: "Notifications that finished, by phase.",
	}, []string{"phase"})
	finishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_notification_create_to_finish_seconds",
		Help:    "Time from a Notification's creation to its last delivery ending.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	providerReadyGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_provider_ready",
		Help: "1 when the provider (Kind/namespace/name, as the dispatch metrics name it) is Ready, 0 when not.",
	}, []string{"provider", "type"})
	registerOnce sync.Once

	// overdue is read by the overdue collector; Setup points it at the
	// latest manager's cache (one per process outside tests).
	overdue atomic.Pointer[overdueSource]

	overdueDesc = prometheus.NewDesc("herald_notifications_overdue",
		"Unfinished Notifications past their expiry (creation or sendAt plus expiresAfter): the reconciler should have ended them.",
		nil, nil)
)

// registerMetrics adds the reconciler's metrics to controller-runtime's registry, once.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(deliveriesTotal, createdTotal, finishedTotal, finishSeconds, providerReadyGauge, overdueCollector{})
	})
}

func countDelivery(namespace string, ch v1alpha1.Channel, providerType string, st v1alpha1.DeliveryState) {
	deliveriesTotal.WithLabelValues(namespace, string(ch), providerType, string(st)).Inc()
}

func observeFinished(n *v1alpha1.Notification, now time.Time) {
	finishedTotal.WithLabelValues(string(n.Status.Phase)).Inc()
	finishSeconds.Observe(now.Sub(n.CreationTimestamp.Time).Seconds())
}

func setProviderReady(provider string, typ v1alpha1.ProviderType, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	providerReadyGauge.DeletePartialMatch(prometheus.Labels{"provider": provider}) // its type may have changed
	providerReadyGauge.WithLabelValues(provider, string(typ)).Set(v)
}

func forgetProviderReady(provider string) {
	providerReadyGauge.DeletePartialMatch(prometheus.Labels{"provider": provider})
}

// namespaceLabels bounds the namespace label's values: the first limit
// namespaces seen keep their name, later ones share OtherNamespace, so a
// cluster with thousands of namespaces cannot blow up the series count.
type namespaceLabels struct {
	limit int
	mu    sync.Mutex
	seen  map[string]struct{}
}

func newNamespaceLabels(limit int) *namespaceLabels {
	return &namespaceLabels{limit: limit, seen: map[string]struct{}{}}
}

func (l *namespaceLabels) of(ns string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[ns]; ok {
		return ns
	}
	if len(l.seen) >= l.limit {
		return OtherNamespace
	}
	l.seen[ns] = struct{}{}
	return ns
}

type overdueSource struct {
	reader client.Reader
	clock  clock.PassiveClock
}

// overdueCollector counts overdue Notifications in the cache when scraped
// (the cache holds only unfinished ones).
type overdueCollector struct{}

func (overdueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- overdueDesc }

func (overdueCollector) Collect(ch chan<- prometheus.Metric) {
	src := overdue.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Read only: without the copy, a scrape allocated every cached
	// Notification again (50 MB a scrape in the tenant-flood soak, whose
	// 1,000 Notifications carry 63 KiB of params each).
	var list v1alpha1.NotificationList
	if err := src.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return // the cache is not synced yet: no sample rather than a wrong 0
	}
	ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(countOverdue(list.Items, src.clock.Now())))
}

func countOverdue(items []v1alpha1.Notification, now time.Time) int {
	n := 0
	for i := range items {
		it := &items[i]
		if it.Status.Phase.Finished() {
			continue
		}
		sendAt, expiresAfter := timing(it)
		if now.After(policy.Expiry(it.CreationTimestamp.Time, sendAt, expiresAfter)) {
			n++
		}
	}
	return n
}
