// Package dashboard defines Herald's Grafana dashboard in Go
// (grafana-foundation-sdk). `make dashboard` writes it to
// config/grafana/herald.json, which the Helm chart ships as a ConfigMap for
// Grafana's sidecar; a test fails when that file is stale, and another that
// every metric and label a panel uses is in a real scrape of the manager.
package dashboard

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's stable identifier (links and provisioning use it).
const UID = "herald-overview"

// Query is one PromQL target of a panel.
type Query struct {
	Expr, Legend string
}

// Panel is one panel: what it shows is said in Description, which
// docs/install.md repeats.
type Panel struct {
	Title, Description, Unit string
	// Stat draws the latest value per series instead of a time series.
	Stat bool
	// ReadyState maps a 0/1 stat to red "Not Ready" / green "Ready".
	ReadyState bool
	Queries    []Query
}

// Row groups panels under a heading.
type Row struct {
	Title  string
	Panels []Panel
}

// sel restricts a query to the manager's scrape job, picked in the $job variable.
const sel = `job=~"$job"`

// Rows are the dashboard's content, top to bottom.
var Rows = []Row{
	{Title: "Notifications", Panels: []Panel{
		{Title: "Notifications created and finished", Unit: "ops",
			Description: "Notifications taken up per second (created) and finished per second by phase (Sent, PartiallySent, Failed, Suppressed, Expired).",
			Queries: []Query{
				{`sum(rate(herald_notifications_created_total{` + sel + `}[$__rate_interval]))`, "created"},
				{`sum by (phase) (rate(herald_notifications_finished_total{` + sel + `}[$__rate_interval]))`, "{{phase}}"},
			}},
		{Title: "Create to finish latency", Unit: "s",
			Description: "50th, 90th and 99th percentile of the time from a Notification's creation to its last delivery ending (scheduled ones include their wait).",
			Queries: []Query{
				{`histogram_quantile(0.5, sum by (le) (rate(herald_notification_create_to_finish_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p50"},
				{`histogram_quantile(0.9, sum by (le) (rate(herald_notification_create_to_finish_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p90"},
				{`histogram_quantile(0.99, sum by (le) (rate(herald_notification_create_to_finish_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p99"},
			}},
		{Title: "Overdue Notifications", Stat: true,
			Description: "Unfinished Notifications past their expiry; should be 0 (alert HeraldNotificationsOverdue).",
			Queries:     []Query{{`max(herald_notifications_overdue{` + sel + `})`, "overdue"}}},
	}},
	{Title: "Deliveries", Panels: []Panel{
		{Title: "Deliveries by channel, provider type and outcome", Unit: "ops",
			Description: "Deliveries reaching a terminal state per second, by channel, provider type and state (Sent, Delivered, Failed, Expired, Skipped, Unknown...).",
			Queries:     []Query{{`sum by (channel, provider_type, state) (rate(herald_deliveries_total{` + sel + `}[$__rate_interval]))`, "{{channel}} {{provider_type}} {{state}}"}}},
		{Title: "Deliveries by namespace and outcome", Unit: "ops",
			Description: "The same by the Notification's namespace; namespaces beyond --metrics-namespace-label-limit are summed as \"other\".",
			Queries:     []Query{{`sum by (namespace, state) (rate(herald_deliveries_total{` + sel + `}[$__rate_interval]))`, "{{namespace}} {{state}}"}}},
		{Title: "Provider calls by result", Unit: "ops",
			Description: "Calls to each provider per second by what it answered: success, transient (retried) or permanent failure.",
			Queries:     []Query{{`sum by (provider, result) (rate(herald_dispatch_attempts_total{` + sel + `}[$__rate_interval]))`, "{{provider}} {{result}}"}}},
		{Title: "Provider call latency (p99)", Unit: "s",
			Description: "99th percentile latency of one call to each provider.",
			Queries:     []Query{{`histogram_quantile(0.99, sum by (provider, le) (rate(herald_dispatch_send_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{provider}}"}}},
	}},
	{Title: "Queues", Panels: []Panel{
		{Title: "Queue depth", Unit: "short",
			Description: "Jobs each provider holds: waiting, backing off or in flight.",
			Queries:     []Query{{`sum by (provider) (herald_dispatch_queue_depth{` + sel + `})`, "{{provider}}"}}},
		{Title: "Oldest queued job age", Unit: "s",
			Description: "Age of the oldest job each provider holds; a rising line is a backlog (alert HeraldQueueBacklogOld at 15 minutes).",
			Queries:     []Query{{`max by (provider) (herald_dispatch_oldest_job_age_seconds{` + sel + `})`, "{{provider}}"}}},
		{Title: "Retries", Unit: "ops",
			Description: "Attempts per second that failed transiently and were scheduled again, by provider.",
			Queries:     []Query{{`sum by (provider) (rate(herald_dispatch_retries_total{` + sel + `}[$__rate_interval]))`, "{{provider}}"}}},
		{Title: "Rate-limit waits", Unit: "s",
			Description: "Seconds per second sends spent waiting for each provider's token bucket (spec.rateLimit): 1 means one send was always waiting.",
			Queries:     []Query{{`sum by (provider) (rate(herald_dispatch_rate_limit_wait_seconds_sum{` + sel + `}[$__rate_interval]))`, "{{provider}}"}}},
		{Title: "Unrecorded sends", Unit: "short",
			Description: "Sends started or accepted but not yet recorded in status: what a crash now could send twice (bounded by --max-unrecorded-sends).",
			Queries:     []Query{{`sum by (provider) (herald_dispatch_unrecorded_sends{` + sel + `})`, "{{provider}}"}}},
	}},
	{Title: "Providers and manager", Panels: []Panel{
		{Title: "Provider Ready", Stat: true, ReadyState: true,
			Description: "Each provider's Ready condition: green Ready, red Not Ready (alert HeraldProviderNotReady after 10 minutes).",
			Queries:     []Query{{`max by (provider, type) (herald_provider_ready{` + sel + `})`, "{{provider}} ({{type}})"}}},
		{Title: "Circuit breakers", Unit: "short",
			Description: "1 while a provider's circuit breaker is open or probing (the provider is not called; deliveries fail over or wait), by provider.",
			Queries:     []Query{{`max by (provider) (herald_dispatch_circuit_open{` + sel + `})`, "{{provider}}"}}},
		{Title: "Reconcile errors", Unit: "ops",
			Description: "Reconciles that returned an error per second, by controller (controller-runtime); they are retried with backoff.",
			Queries:     []Query{{`sum by (controller) (rate(controller_runtime_reconcile_errors_total{` + sel + `}[$__rate_interval]))`, "{{controller}}"}}},
		{Title: "Manager memory", Unit: "bytes",
			Description: "Resident memory and Go heap in use of each manager pod; GOMEMLIMIT follows the container's memory limit.",
			Queries: []Query{
				{`process_resident_memory_bytes{` + sel + `}`, "{{instance}} resident"},
				{`go_memstats_heap_inuse_bytes{` + sel + `}`, "{{instance}} heap"},
			}},
	}},
}

// Build assembles the dashboard.
func Build() (dashboard.Dashboard, error) {
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
	b := dashboard.NewDashboardBuilder("Herald").
		Uid(UID).
		Description("Herald notification delivery: notifications, deliveries, provider queues, provider health and the manager.").
		Tags([]string{"herald", "kubernetes-operator"}).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("job").Label("Job").
			Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(herald_notifications_created_total, job)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Multi(true).IncludeAll(true).AllValue(".*"))
	for _, row := range Rows {
		b = b.WithRow(dashboard.NewRowBuilder(row.Title))
		for _, p := range row.Panels {
			b = b.WithPanel(panel(p, ds))
		}
	}
	return b.Build()
}

func panel(p Panel, ds common.DataSourceRef) cog.Builder[dashboard.Panel] {
	if p.Stat {
		s := stat.NewPanelBuilder().Title(p.Title).Description(p.Description).Datasource(ds).
			Height(6).Span(8).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeNone)
		if p.ReadyState {
			s = s.Span(16).Mappings(readyMappings()).Thresholds(redGreen())
		}
		for _, q := range p.Queries {
			s = s.WithTarget(prometheus.NewDataqueryBuilder().Expr(q.Expr).LegendFormat(q.Legend).Instant())
		}
		return s
	}
	t := timeseries.NewPanelBuilder().Title(p.Title).Description(p.Description).Datasource(ds).
		Height(8).Span(12).Unit(p.Unit).Min(0)
	for _, q := range p.Queries {
		t = t.WithTarget(prometheus.NewDataqueryBuilder().Expr(q.Expr).LegendFormat(q.Legend))
	}
	return t
}

func readyMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: cog.ToPtr("Not Ready"), Color: cog.ToPtr("red")},
			"1": {Text: cog.ToPtr("Ready"), Color: cog.ToPtr("green")},
		},
	}}}
}

func redGreen() cog.Builder[dashboard.ThresholdsConfig] {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
		{Value: nil, Color: "red"},
		{Value: cog.ToPtr(1.0), Color: "green"},
	})
}

// JSON is the dashboard as Grafana imports it (what config/grafana/herald.json holds).
func JSON() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
