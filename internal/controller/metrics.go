package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/herald-dev/herald/api/v1alpha1"
)

var (
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_deliveries_total",
		Help: "Deliveries that reached a terminal state, by channel, provider type and state.",
	}, []string{"channel", "provider_type", "state"})
	finishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_notifications_finished_total",
		Help: "Notifications that finished, by phase.",
	}, []string{"phase"})
	finishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_notification_create_to_finish_seconds",
		Help:    "Time from a Notification's creation to its last delivery ending.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	registerOnce sync.Once
)

// registerMetrics adds the reconciler's metrics to controller-runtime's registry, once.
func registerMetrics() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(deliveriesTotal, finishedTotal, finishSeconds) })
}

func countDelivery(ch v1alpha1.Channel, providerType string, st v1alpha1.DeliveryState) {
	deliveriesTotal.WithLabelValues(string(ch), providerType, string(st)).Inc()
}

func observeFinished(n *v1alpha1.Notification, now time.Time) {
	finishedTotal.WithLabelValues(string(n.Status.Phase)).Inc()
	finishSeconds.Observe(now.Sub(n.CreationTimestamp.Time).Seconds())
}
