package soak

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/hack/bench"
	"github.com/herald-dev/herald/senders/fake"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
	"github.com/herald-dev/herald/senders/webhook"
)

// TestProviderFaults sends through a webhook receiver answering 30 % 5xx,
// 10 % 429 with Retry-After, 5 % timeouts and 2 % permanent 400s, while a
// second, healthy receiver serves a steady stream: everything is delivered
// before expiry (or Failed on a permanent error, which is never retried),
// Retry-After is honoured, and the healthy provider's latency is measured
// before and during the failures.
func TestProviderFaults(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "soak-faults")
	bad, err := fakewebhook.New(fakewebhook.Options{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	const retryAfter = time.Second
	bad.Script.SetRates(
		fake.Rate{P: 0.30, Fault: fake.Fault{Status: http.StatusInternalServerError}},
		fake.Rate{P: 0.10, Fault: fake.Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}},
		fake.Rate{P: 0.05, Fault: fake.Fault{Latency: 3 * time.Second}}, // beyond the provider's 1s timeout
		fake.Rate{P: 0.02, Fault: fake.Fault{Status: http.StatusBadRequest, Reason: "invalid_payload"}},
	)
	good, err := fakewebhook.New(fakewebhook.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	m, _ := startManager(t, "faults")
	_ = m
	provider := func(name, url string) {
		p := &v1alpha1.ChannelProvider{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.ChannelProviderSpec{
				Type: v1alpha1.ProviderWebhook, Concurrency: 10,
				Timeout: &metav1.Duration{Duration: time.Second},
				Retry: &v1alpha1.RetryPolicy{MaxAttempts: 30, InitialBackoff: &metav1.Duration{Duration: 200 * time.Millisecond},
					MaxBackoff: &metav1.Duration{Duration: 2 * time.Second}},
				Webhook: &v1alpha1.WebhookConfig{URL: url + "/hook", Format: "json"},
			},
		}
		if err := plane.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := bench.WaitProviderReady(ctx, plane.Client, p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	provider("failing", bad.URL())
	provider("healthy", good.URL())
	// The control: the same burst as the failing one, to a healthy
	// receiver, separates the cost of the burst from the cost of failures.
	control, err := fakewebhook.New(fakewebhook.Options{Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()
	provider("control", control.URL())
	tracker, err := bench.Track(ctx, plane.Config, ns)
	if err != nil {
		t.Fatal(err)
	}

	const expiry = 10 * time.Minute
	notif := func(name, webhookProvider string) *v1alpha1.Notification {
		return &v1alpha1.Notification{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1alpha1.NotificationSpec{
				Content:      &v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: "deploy {{ .Params.n }} done"}},
				Params:       bench.JSON(`{"n": "` + name + `"}`),
				Recipients:   []v1alpha1.Recipient{{Webhook: webhookProvider}},
				ExpiresAfter: &metav1.Duration{Duration: expiry},
			},
		}
	}
	// steady sends Notifications to the healthy provider and measures them.
	steady := func(prefix string, count int, rate float64) []time.Duration {
		return measure(t, tracker, prefix, count, rate, func(name string, _ int) *v1alpha1.Notification { return notif(name, "healthy") })
	}
	healthyCount := scale(40, 200)
	baseline := steady("base", healthyCount, 20)

	failing := scale(150, 1000)
	// burst creates count Notifications to provider while the steady
	// stream to the healthy provider runs, and returns the stream's latencies.
	burst := func(prefix, provider string) []time.Duration {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := bench.Parallel(ctx, failing, 8, func(ctx context.Context, i int) error {
				return plane.Client.Create(ctx, notif(fmt.Sprintf("%s-%04d", prefix, i), provider))
			}); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(200 * time.Millisecond)
		lat := steady(prefix+"-steady", healthyCount, 20)
		wg.Wait()
		return lat
	}
	withControl := burst("ctl", "control")
	if err := tracker.WaitCount(ctx, 2*healthyCount+failing, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	during := burst("bad", "failing")

	var names []string
	for i := range failing {
		names = append(names, fmt.Sprintf("bad-%04d", i))
	}
	if err := bench.Poll(ctx, scale(4*time.Minute, 8*time.Minute), 250*time.Millisecond, func() error {
		for _, name := range names {
			if _, ok := tracker.Finished(name); !ok {
				return fmt.Errorf("%s not finished", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// What the failing receiver saw, per message (X-Herald-Delivery).
	byID := map[string][]fakewebhook.Request{}
	for _, r := range bad.Received.All() {
		id := r.Header.Get(webhook.HeaderDelivery)
		byID[id] = append(byID[id], r)
	}
	var retriedAfterPermanent, answered429 int
	minGap := time.Duration(1 << 62)
	var tooSoon []string
	for id, rs := range byID {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Time.Before(rs[j].Time) })
		for i, r := range rs {
			if i+1 >= len(rs) {
				break
			}
			switch r.Status {
			case http.StatusBadRequest:
				retriedAfterPermanent++
			case http.StatusTooManyRequests:
				answered429++
				gap := rs[i+1].Time.Sub(r.Time)
				minGap = min(minGap, gap)
				if gap < retryAfter {
					tooSoon = append(tooSoon, fmt.Sprintf("%s: %v", id, gap))
				}
			}
		}
	}

	var sent, failedPermanent int
	var problems []string
	for _, name := range names {
		var n v1alpha1.Notification
		if err := plane.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &n); err != nil {
			t.Fatal(err)
		}
		if len(n.Status.Deliveries) != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d deliveries", name, len(n.Status.Deliveries)))
			continue
		}
		d := n.Status.Deliveries[0]
		switch {
		case n.Status.Phase == v1alpha1.PhaseSent && d.SentTime != nil && d.SentTime.Before(&metav1.Time{Time: n.CreationTimestamp.Add(expiry)}):
			sent++
		case n.Status.Phase == v1alpha1.PhaseFailed && d.State == v1alpha1.DeliveryFailed && lastStatus(byID, d.ProviderMessageID, name) == http.StatusBadRequest:
			failedPermanent++
		default:
			problems = append(problems, fmt.Sprintf("%s: %s, delivery %s %s after %d attempts: %s", name, n.Status.Phase, d.State, d.Reason, d.Attempts, d.Message))
		}
	}
	answers := map[int]int{}
	for _, r := range bad.Received.All() {
		answers[r.Status]++
	}
	figure(t, "failing_notifications", failing)
	figure(t, "failing_sent", sent)
	figure(t, "failing_failed_permanent", failedPermanent)
	figure(t, "failing_requests_by_answer", answers)
	figure(t, "retry_after_answers_followed_by_retry", answered429)
	if answered429 > 0 {
		figure(t, "retry_after_min_gap_ms", bench.Ms(minGap))
	}
	figure(t, "retries_after_permanent_error", retriedAfterPermanent)
	figure(t, "healthy_latency_baseline_p50_p99_ms", fmt.Sprintf("%.0f / %.0f", bench.Ms(bench.Percentile(baseline, 50)), bench.Ms(bench.Percentile(baseline, 99))))
	figure(t, "healthy_latency_during_healthy_burst_p50_p99_ms", fmt.Sprintf("%.0f / %.0f", bench.Ms(bench.Percentile(withControl, 50)), bench.Ms(bench.Percentile(withControl, 99))))
	figure(t, "healthy_latency_during_faults_p50_p99_ms", fmt.Sprintf("%.0f / %.0f", bench.Ms(bench.Percentile(during, 50)), bench.Ms(bench.Percentile(during, 99))))

	if len(problems) > 0 {
		t.Errorf("%d Notifications neither sent before expiry nor failed on a permanent error: %v", len(problems), head(problems, 5))
	}
	if retriedAfterPermanent > 0 {
		t.Errorf("%d messages retried after a permanent 400", retriedAfterPermanent)
	}
	if len(tooSoon) > 0 {
		t.Errorf("%d retries came sooner than Retry-After %v: %v", len(tooSoon), retryAfter, head(tooSoon, 5))
	}
}

// lastStatus is the last answer the receiver gave for a message. The
// delivery's providerMessageID may be empty on failure, so the receiver's
// log is searched by the Notification's name in the body as well.
func lastStatus(byID map[string][]fakewebhook.Request, id, name string) int {
	if rs := byID[id]; id != "" && len(rs) > 0 {
		return rs[len(rs)-1].Status
	}
	for _, rs := range byID {
		if len(rs) > 0 && containsName(rs[len(rs)-1].Body, name) {
			return rs[len(rs)-1].Status
		}
	}
	return 0
}

func containsName(body []byte, name string) bool {
	return len(body) > 0 && bytesContains(body, []byte(`"`+name+`"`))
}
