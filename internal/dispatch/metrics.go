package dispatch

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The collectors are package-level so every Dispatcher in a process (tests
// make many) shares them; they record whether or not they are registered.
var (
	attemptsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_dispatch_attempts_total",
		Help: "Calls to a provider, by what it answered: success, transient or permanent.",
	}, []string{"provider", "result"})

	retriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_dispatch_retries_total",
		Help: "Attempts that failed transiently and were scheduled again.",
	}, []string{"provider"})

	finishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_dispatch_jobs_finished_total",
		Help: "Jobs that reached a terminal state: sent, failed or expired.",
	}, []string{"provider", "state"})

	sendSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_dispatch_send_duration_seconds",
		Help:    "Latency of one call to a provider.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"provider"})

	queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_dispatch_queue_depth",
		Help: "Jobs held for a provider: waiting, backing off or in flight.",
	}, []string{"provider"})

	rateLimitWaitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_dispatch_rate_limit_wait_seconds",
		Help:    "Time a send waited for the provider's token bucket; only waits longer than zero are observed.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 60},
	}, []string{"provider"})

	unrecordedSends = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_dispatch_unrecorded_sends",
		Help: "Sends started or accepted whose outcome is not yet recorded in status: what a crash now could send twice.",
	}, []string{"provider"})

	windowWaitsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_dispatch_unrecorded_waits_total",
		Help: "Times a send waited because the provider's unrecorded sends were at the bound (--max-unrecorded-sends).",
	}, []string{"provider"})

	circuitOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_dispatch_circuit_open",
		Help: "1 while the provider's circuit breaker is open or probing (the provider is not called), else 0.",
	}, []string{"provider"})

	circuitOpenedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_dispatch_circuit_opened_total",
		Help: "Times the provider's circuit breaker opened.",
	}, []string{"provider"})

	registerOnce sync.Once
)

// RegisterMetrics adds the dispatcher's metrics to controller-runtime's
// registry, which the manager serves. The manager calls it once; further
// calls do nothing, so tests that build many managers do not panic.
func RegisterMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(attemptsTotal, retriesTotal, finishedTotal,
			sendSeconds, queueDepth, rateLimitWaitSeconds, unrecordedSends, windowWaitsTotal, circuitOpen, circuitOpenedTotal)
	})
}

// queueMetrics holds one provider's series, resolved once so the hot path
// does not hash label values on every attempt.
type queueMetrics struct {
	success, transient, permanent prometheus.Counter
	retries                       prometheus.Counter
	sent, failed, expired         prometheus.Counter
	latency                       prometheus.Observer
	depth                         prometheus.Gauge
	rateWait                      prometheus.Observer
	unrecorded                    prometheus.Gauge
	windowWaits                   prometheus.Counter
	open                          prometheus.Gauge
	opened                        prometheus.Counter
}

// circuit records a change of the breaker's state.
func (m queueMetrics) circuit(c Circuit) {
	if c == CircuitClosed {
		m.open.Set(0)
		return
	}
	m.open.Set(1)
	m.opened.Inc()
}

func newQueueMetrics(provider string) queueMetrics {
	return queueMetrics{
		success:   attemptsTotal.WithLabelValues(provider, "success"),
		transient: attemptsTotal.WithLabelValues(provider, "transient"),
		permanent: attemptsTotal.WithLabelValues(provider, "permanent"),
		retries:   retriesTotal.WithLabelValues(provider),
		sent:      finishedTotal.WithLabelValues(provider, "sent"),
		failed:    finishedTotal.WithLabelValues(provider, "failed"),
		expired:   finishedTotal.WithLabelValues(provider, "expired"),
		latency:   sendSeconds.WithLabelValues(provider),
		depth:     queueDepth.WithLabelValues(provider),
		rateWait:  rateLimitWaitSeconds.WithLabelValues(provider),

		unrecorded:  unrecordedSends.WithLabelValues(provider),
		windowWaits: windowWaitsTotal.WithLabelValues(provider),
		open:        circuitOpen.WithLabelValues(provider),
		opened:      circuitOpenedTotal.WithLabelValues(provider),
	}
}

// deleteQueueMetrics drops a removed provider's series so a deleted provider
// does not report a stale depth forever.
func deleteQueueMetrics(provider string) {
	l := prometheus.Labels{"provider": provider}
	attemptsTotal.DeletePartialMatch(l)
	retriesTotal.DeletePartialMatch(l)
	finishedTotal.DeletePartialMatch(l)
	sendSeconds.DeletePartialMatch(l)
	queueDepth.DeletePartialMatch(l)
	rateLimitWaitSeconds.DeletePartialMatch(l)
	unrecordedSends.DeletePartialMatch(l)
	windowWaitsTotal.DeletePartialMatch(l)
	circuitOpen.DeletePartialMatch(l)
	circuitOpenedTotal.DeletePartialMatch(l)
}
