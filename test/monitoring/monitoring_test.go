// Package monitoring checks what operators watch Herald with: the alert
// rules (promtool check and unit tests, a runbook per alert) and that every
// metric and label the alerts and the dashboard use is in a real scrape of
// a running manager.
package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/senders/fake"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
)

var (
	rulesFile     = filepath.Join(testenv.Root(), "config", "prometheus", "herald-rules.yaml")
	rulesTestFile = filepath.Join(testenv.Root(), "config", "prometheus", "herald-rules_test.yaml")
	dashboardFile = filepath.Join(testenv.Root(), "config", "grafana", "herald.json")
	operationsDoc = filepath.Join(testenv.Root(), "docs", "operations.md")
)

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert, Record, Expr string
			Annotations         map[string]string
		}
	}
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

// promtool accepts the rules and fires each alert on its synthetic series
// (herald-rules_test.yaml); every alert has such a test that expects it to
// fire, and a runbook section in docs/operations.md.
func TestAlertRules(t *testing.T) {
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(testenv.Tool(t, "promtool"), args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		anchors[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "-"))] = true
	}
	n := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fired[r.Alert] {
				t.Errorf("%s: no promtool test expects it to fire", r.Alert)
			}
			url := r.Annotations["runbook_url"]
			anchor := url[strings.LastIndex(url, "#")+1:]
			if !strings.HasSuffix(url[:strings.LastIndex(url, "#")+1], "docs/operations.md#") || anchor != strings.ToLower(r.Alert) || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q does not point at a docs/operations.md section named for it", r.Alert, url)
			}
		}
	}
	if n != 6 {
		t.Errorf("%d alerts, want 6", n)
	}
}

// queries are every PromQL expression the alerts and the dashboard use,
// with the legend templates of the dashboard's.
func queries(t *testing.T) map[string]string {
	t.Helper()
	q := map[string]string{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			q[r.Expr] = ""
		}
	}
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q[tg.Expr] = tg.LegendFormat
		}
	}
	return q
}

var (
	metricName = regexp.MustCompile(`\b(?:herald|controller_runtime|process|go)_[a-z0-9_]+\b`)
	selector   = regexp.MustCompile(`\b((?:herald|controller_runtime|process|go)_[a-z0-9_]+)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping   = regexp.MustCompile(`\b(?:by|on|without|ignoring)\s*\(([^)]*)\)`)
	legend     = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// targetLabels are added by Prometheus, not exported by the manager.
var targetLabels = map[string]bool{"job": true, "instance": true}

// Every metric name and label the alert rules and the dashboard use is in
// a scrape of a manager that has sent notifications.
func TestScrapeHasEverythingUsed(t *testing.T) {
	scrape, url := runAndScrape(t)
	defer checkCreated(t, url)
	for expr, leg := range queries(t) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("no Herald metric in %q", expr)
		}
		labels := map[string]bool{}
		for _, n := range names {
			ls, ok := scrape[n]
			if !ok {
				t.Errorf("%s (in %q) is not in the scrape", n, expr)
				continue
			}
			for l := range ls {
				labels[l] = true
			}
		}
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			for _, l := range matcher.FindAllStringSubmatch(m[2], -1) {
				if !targetLabels[l[1]] && !scrape[m[1]][l[1]] {
					t.Errorf("%s has no label %q (in %q)", m[1], l[1], expr)
				}
			}
		}
		var used []string
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				used = append(used, strings.TrimSpace(l))
			}
		}
		for _, m := range legend.FindAllStringSubmatch(leg, -1) {
			used = append(used, m[1])
		}
		for _, l := range used {
			if l != "" && !targetLabels[l] && !labels[l] {
				t.Errorf("label %q (in %q, legend %q) is on none of %v", l, expr, leg, names)
			}
		}
	}
}

// runAndScrape runs a manager against a test API server, sends a
// notification through a log provider (finished) and one through a webhook
// that hangs (held in the queue), and returns the scrape: each metric
// name (histograms' _bucket, _sum and _count included) with its label names.
func runAndScrape(t *testing.T) (map[string]map[string]bool, string) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // the manager runs until the test ends

	hook, err := fakewebhook.New(fakewebhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	// Every call hangs past the provider's timeout and is retried: the job
	// stays held for the whole test.
	for range 10 {
		hook.Script.Push(fake.Fault{Latency: 20 * time.Second})
	}

	o := manager.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.Namespace = testenv.FreeAddr(t), "0", "default"
	o.OutboxDir = t.TempDir()
	o.EgressAllowCIDRs = "127.0.0.0/8"
	o.DrainTimeout = time.Second
	mgr, err := manager.New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { stop(); <-done })

	c := env.Client
	const ns = "metrics"
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "log-email", Namespace: ns}, Spec: v1alpha1.ChannelProviderSpec{
			Type: v1alpha1.ProviderLog, Default: true, Log: &v1alpha1.LogConfig{Channel: v1alpha1.ChannelEmail}}},
		&v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "room", Namespace: ns}, Spec: v1alpha1.ChannelProviderSpec{
			Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: hook.URL() + "/hooks/room", Format: "json"}}},
		&v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns}, Spec: v1alpha1.NotificationSpec{
			Content:    &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Build 1234", Text: "failed"}},
			Recipients: []v1alpha1.Recipient{{Email: "alice@example.com"}}}},
		&v1alpha1.Notification{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, Spec: v1alpha1.NotificationSpec{
			Content:    &v1alpha1.ChannelContent{Webhook: &v1alpha1.WebhookContent{Text: "Build 1234 failed"}},
			Recipients: []v1alpha1.Recipient{{Webhook: "room"}}}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	// The email finishes; the webhook hangs (held: the oldest job age is
	// reported). Scrape until every series the run produces is there.
	want := []string{"herald_deliveries_total", "herald_notifications_finished_total", "herald_dispatch_oldest_job_age_seconds", "herald_provider_ready"}
	var got map[string]map[string]bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err = scrapeNames("http://" + o.MetricsAddr + "/metrics")
		var missing []string
		for _, n := range want {
			if _, ok := got[n]; !ok {
				missing = append(missing, n)
			}
		}
		if err == nil && len(missing) == 0 {
			return got, "http://" + o.MetricsAddr + "/metrics"
		}
		if time.Now().After(deadline) {
			names := make([]string, 0, len(got))
			for n := range got {
				if strings.HasPrefix(n, "herald_") {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			t.Fatalf("scrape lacks %v (error %v); herald metrics: %v", missing, err, names)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkCreated: each of the run's two Notifications is counted created
// once, however many status writes it took (the webhook's first write
// comes with its first retry).
func checkCreated(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		fams, err := scrape(url)
		var v float64
		if f := fams["herald_notifications_created_total"]; err == nil && f != nil && len(f.GetMetric()) == 1 {
			v = f.GetMetric()[0].GetCounter().GetValue()
		}
		if v == 2 {
			return
		}
		if v > 2 || time.Now().After(deadline) {
			t.Fatalf("herald_notifications_created_total = %v (%v), want 2", v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func scrapeNames(url string) (map[string]map[string]bool, error) {
	fams, err := scrape(url)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range m.GetLabel() {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			add(name, m)
			if f.GetType() == dto.MetricType_HISTOGRAM {
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			}
		}
		if len(f.GetMetric()) == 0 {
			out[name] = map[string]bool{}
		}
	}
	return out, nil
}
