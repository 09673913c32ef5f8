package inbound

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/herald-dev/herald/api/v1alpha1"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_inbound_requests_total",
		Help: "Requests to the inbound server, by source (twilio, sendgrid, receiver, unsubscribe, unknown) and result.",
	}, []string{"source", "result"})
	receiptsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_receipts_total",
		Help: "Provider receipts, by provider and outcome (applied, duplicate, unmatched, expired, learned, opt_out, opt_in...).",
	}, []string{"provider", "outcome"})
	receiverEventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_receiver_events_total",
		Help: "Authenticated Receiver events, by receiver type and result (created, duplicate, ignored, invalid, error).",
	}, []string{"type", "result"})
	registerOnce sync.Once
)

// RegisterMetrics adds the inbound metrics to controller-runtime's registry, once.
func RegisterMetrics() {
	registerOnce.Do(func() { metrics.Registry.MustRegister(requestsTotal, receiptsTotal, receiverEventsTotal) })
}

func observe(source, result string) { requestsTotal.WithLabelValues(source, result).Inc() }

// CountReceipt counts one receipt's outcome.
func CountReceipt(provider, outcome string) { receiptsTotal.WithLabelValues(provider, outcome).Inc() }

func countReceiver(typ v1alpha1.ReceiverType, result string) {
	receiverEventsTotal.WithLabelValues(string(typ), result).Inc()
}
