// Command bench measures Herald against a real kube-apiserver and etcd, with
// the manager as its own process and the log provider as a loopback: the API
// server's own ceiling, notification throughput and latency, fan-out rate,
// memory with history, etcd growth and status writes per notification. It
// prints a table and writes results.json. `make bench` runs it full,
// `make bench-quick` with -quick; see docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/hack/bench"
	"github.com/herald-dev/herald/internal/manager"
)

// sizes are the counts of one run.
type sizes struct {
	Clients       int     `json:"clients"`
	CeilingPairs  int     `json:"ceiling_pairs"`
	Throughput    int     `json:"throughput_notifications"`
	LatencyRate   float64 `json:"latency_rate_per_s"`
	LatencyFor    string  `json:"latency_duration"`
	SustainedRate float64 `json:"sustained_latency_rate_per_s"`
	FanoutUsers   int     `json:"fanout_users"`
	FinishedExtra int     `json:"history_filler_notifications"`
	Active        int     `json:"active_notifications"`
	latencyFor    time.Duration
}

var (
	// Scaled to fit 10 minutes on 2 cores where the API server manages
	// about 50 Notification create + status pairs a second: the history for
	// the memory figure is what the run leaves behind plus a filler, not
	// 100,000 (see docs/benchmarks.md).
	full  = sizes{Clients: 32, CeilingPairs: 2500, Throughput: 2500, LatencyRate: 100, latencyFor: 10 * time.Second, SustainedRate: 20, FanoutUsers: 10000, FinishedExtra: 4000, Active: 1000}
	quick = sizes{Clients: 32, CeilingPairs: 300, Throughput: 300, LatencyRate: 100, latencyFor: 2 * time.Second, SustainedRate: 20, FanoutUsers: 300, FinishedExtra: 300, Active: 100}
)

type result struct {
	key, label, unit, target string
	value                    float64
}

func main() {
	isQuick := flag.Bool("quick", false, "small counts: seconds, not minutes; figures are not meaningful")
	out := flag.String("out", "bin/bench/results.json", "where to write the results")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	sz := full
	if *isQuick {
		sz = quick
	}
	sz.LatencyFor = sz.latencyFor.String()
	if err := run(sz, *isQuick, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(sz sizes, isQuick bool, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf("building the manager and starting kube-apiserver + etcd")
	bin := filepath.Join(dir, "manager")
	if err := bench.BuildManager(ctx, bin); err != nil {
		return err
	}
	plane, err := bench.StartPlane(filepath.Join(dir, "plane"))
	if err != nil {
		return err
	}
	defer func() { _ = plane.Stop() }()
	c := plane.Client
	r := map[string]float64{}

	// 1. The ceiling: the API server alone, no manager running.
	logf("ceiling: %d create + status update pairs, %d clients", sz.CeilingPairs, sz.Clients)
	if err := bench.CreateNamespace(ctx, c, "bench-ceiling"); err != nil {
		return err
	}
	t0 := time.Now()
	err = bench.Parallel(ctx, sz.CeilingPairs, sz.Clients, func(ctx context.Context, i int) error {
		n := bench.EmailNotification("bench-ceiling", fmt.Sprintf("pair-%06d", i), "someone@example.com")
		// Finished by the status write below, so the manager, started
		// later, never looks at it.
		if err := c.Create(ctx, n); err != nil {
			return err
		}
		sentStatus(n)
		return c.Status().Update(ctx, n)
	})
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	r["api_ceiling_pairs_per_s"] = float64(sz.CeilingPairs) / time.Since(t0).Seconds()

	// 1b. The raw ceiling: the same objects in a schema-less CRD.
	logf("raw ceiling: %d create + status update pairs of a schema-less CRD", sz.CeilingPairs)
	t0 = time.Now()
	err = bench.Parallel(ctx, sz.CeilingPairs, sz.Clients, func(ctx context.Context, i int) error {
		n := bench.EmailNotification("bench-ceiling", fmt.Sprintf("raw-%06d", i), "someone@example.com")
		u, err := raw(n)
		if err != nil {
			return err
		}
		if err := c.Create(ctx, u); err != nil {
			return err
		}
		sentStatus(n)
		st, err := raw(n)
		if err != nil {
			return err
		}
		u.Object["status"] = st.Object["status"]
		return c.Status().Update(ctx, u)
	})
	if err != nil {
		return fmt.Errorf("raw ceiling: %w", err)
	}
	r["api_raw_ceiling_pairs_per_s"] = float64(sz.CeilingPairs) / time.Since(t0).Seconds()
	// 2. The manager, as its own process with its default flags and the
	// journal the Helm chart gives it.
	outbox := filepath.Join(dir, "outbox")
	mgr, err := bench.StartManager(ctx, bench.ManagerOptions{Binary: bin, Kubeconfig: plane.Kubeconfig, OutboxDir: outbox, LogFile: filepath.Join(dir, "manager.log"),
		Args: []string{"--journal-dir=" + filepath.Join(dir, "journal")}})
	if err != nil {
		return err
	}
	defer mgr.Stop()
	const ns = "bench"
	if err := bench.CreateNamespace(ctx, c, ns); err != nil {
		return err
	}
	if err := bench.LogProvider(ctx, c, ns, v1alpha1.ChannelEmail, int32(sz.Clients)); err != nil {
		return err
	}
	tracker, err := bench.Track(ctx, plane.Config, ns)
	if err != nil {
		return err
	}

	// 3. Throughput, status writes and etcd growth per notification.
	logf("throughput: %d single-recipient notifications, %d clients", sz.Throughput, sz.Clients)
	etcdBefore, err := bench.EtcdCompact(ctx, plane.EtcdURL())
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	apiBefore, err := plane.APIServerMetrics(ctx)
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := bench.Parallel(ctx, sz.Throughput, sz.Clients, func(ctx context.Context, i int) error {
		return c.Create(ctx, bench.EmailNotification(ns, fmt.Sprintf("tp-%06d", i), fmt.Sprintf("tp-%06d@example.com", i)))
	}); err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	createdIn := time.Since(t0)
	if err := tracker.WaitCount(ctx, sz.Throughput, 5*time.Minute); err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	tpElapsed := time.Since(t0)
	notSent := 0
	for i := range sz.Throughput {
		if s, _ := tracker.Finished(fmt.Sprintf("tp-%06d", i)); s.Phase != v1alpha1.PhaseSent {
			notSent++
		}
	}
	r["notifications_per_s"] = float64(sz.Throughput) / tpElapsed.Seconds()
	r["ratio_to_ceiling"] = r["notifications_per_s"] / r["api_ceiling_pairs_per_s"]
	r["ratio_to_raw_ceiling"] = r["notifications_per_s"] / r["api_raw_ceiling_pairs_per_s"]
	r["throughput_create_only_per_s"] = float64(sz.Throughput) / createdIn.Seconds()
	r["throughput_not_sent"] = float64(notSent)
	// Let the finished label patches and Events land before counting.
	if err := waitQuiet(ctx, plane, 2*time.Minute); err != nil {
		return err
	}
	apiAfter, err := plane.APIServerMetrics(ctx)
	if err != nil {
		return err
	}
	etcdAfter, err := bench.EtcdCompact(ctx, plane.EtcdURL())
	if err != nil {
		return err
	}
	r["writes_per_notification"] = (bench.WritesAfterCreate(apiAfter) - bench.WritesAfterCreate(apiBefore)) / float64(sz.Throughput)
	r["status_writes_per_notification"] = (bench.StatusWrites(apiAfter) - bench.StatusWrites(apiBefore)) / float64(sz.Throughput)
	r["notification_writes_per_notification"] = (bench.NotificationWrites(apiAfter) - bench.NotificationWrites(apiBefore)) / float64(sz.Throughput)
	r["etcd_bytes_per_notification"] = float64(etcdAfter.DBSizeInUse-etcdBefore.DBSizeInUse) / float64(sz.Throughput)
	var one v1alpha1.Notification
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tp-000000"}, &one); err == nil {
		b, _ := json.Marshal(&one)
		r["stored_notification_json_bytes"] = float64(len(b))
	}

	// 4. Latency at a steady rate: half the ceiling measured in this run
	// (the target's rate: a rate the API server sustains, so the figure is
	// the manager's latency, not a backlog), and a low fixed rate.
	done := sz.Throughput
	sz.LatencyRate = math.Round(r["api_ceiling_pairs_per_s"] / 2)
	r["latency_rate_per_s"] = sz.LatencyRate
	for _, lr := range []struct {
		prefix string
		rate   float64
		p50    string
		p99    string
	}{{"lat", sz.LatencyRate, "latency_p50_ms", "latency_p99_ms"}, {"sus", sz.SustainedRate, "sustained_latency_p50_ms", "sustained_latency_p99_ms"}} {
		count := int(lr.rate * sz.latencyFor.Seconds())
		logf("latency: %d notifications at %.0f/s", count, lr.rate)
		lat, err := latency(ctx, c, tracker, ns, lr.prefix, count, lr.rate, done)
		if err != nil {
			return err
		}
		done += count
		r[lr.p50] = bench.Ms(bench.Percentile(lat, 50))
		r[lr.p99] = bench.Ms(bench.Percentile(lat, 99))
	}

	// 5. Fan-out to users by selector.
	logf("fan-out: creating %d users", sz.FanoutUsers)
	if err := bench.CreateUsers(ctx, c, ns, "fan", sz.FanoutUsers, sz.Clients); err != nil {
		return err
	}
	if err := bench.WaitUsersReady(ctx, c, ns, sz.FanoutUsers, 5*time.Minute); err != nil {
		return err
	}
	logf("fan-out: one Notification to %d users", sz.FanoutUsers)
	follow := bench.Follow(outbox)
	base := follow.Lines()
	fan := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: "fanout", Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content:           &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Release {{ .Params.v }}", Text: "Hi {{ .Recipient.Name }}, {{ .Params.v }} is out."}},
			Params:            bench.JSON(`{"v": "1.2.3"}`),
			RecipientSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "fan"}},
		},
	}
	t0 = time.Now()
	if err := c.Create(ctx, fan); err != nil {
		return err
	}
	if err := bench.Poll(ctx, 5*time.Minute, 10*time.Millisecond, func() error {
		if n := follow.Lines() - base; n < sz.FanoutUsers {
			return fmt.Errorf("%d of %d messages at the provider", n, sz.FanoutUsers)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("fan-out: %w", err)
	}
	r["fanout_messages_per_s"] = float64(sz.FanoutUsers) / time.Since(t0).Seconds()
	if err := bench.Poll(ctx, 5*time.Minute, 50*time.Millisecond, func() error {
		if _, ok := tracker.Finished("fanout"); !ok {
			return fmt.Errorf("fan-out parent not finished")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("fan-out: %w", err)
	}
	s, _ := tracker.Finished("fanout")
	r["fanout_recorded_messages_per_s"] = float64(sz.FanoutUsers) / s.At.Sub(t0).Seconds()

	// 6. Memory with history in the cluster and active notifications cached.
	logf("memory: %d more finished notifications, then %d active (scheduled)", sz.FinishedExtra, sz.Active)
	if err := bench.Parallel(ctx, sz.FinishedExtra, sz.Clients, func(ctx context.Context, i int) error {
		n := bench.EmailNotification("bench-ceiling", fmt.Sprintf("hist-%06d", i), "someone@example.com")
		if err := c.Create(ctx, n); err != nil {
			return err
		}
		// Finished at once, before the manager (running now) gets far with
		// it: the namespace has no provider, so it could only wait.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(n), n); err != nil {
				return err
			}
			now := metav1.Now()
			n.Status = v1alpha1.NotificationStatus{Phase: v1alpha1.PhaseSent, StartTime: &now, CompletionTime: &now,
				Summary: v1alpha1.DeliverySummary{Total: 1, Sent: 1}}
			return c.Status().Update(ctx, n)
		})
	}); err != nil {
		return err
	}
	later := metav1.NewTime(time.Now().Add(time.Hour))
	if err := bench.Parallel(ctx, sz.Active, sz.Clients, func(ctx context.Context, i int) error {
		n := bench.EmailNotification(ns, fmt.Sprintf("active-%06d", i), fmt.Sprintf("active-%06d@example.com", i))
		n.Spec.SendAt = &later
		return c.Create(ctx, n)
	}); err != nil {
		return err
	}
	if err := bench.Poll(ctx, 3*time.Minute, time.Second, func() error {
		var list v1alpha1.NotificationList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{}); err != nil {
			return err
		}
		scheduled := 0
		for _, n := range list.Items {
			if n.Status.Phase == v1alpha1.PhaseScheduled {
				scheduled++
			}
		}
		if scheduled < sz.Active {
			return fmt.Errorf("%d of %d scheduled", scheduled, sz.Active)
		}
		return nil
	}); err != nil {
		return err
	}
	var total v1alpha1.NotificationList
	if err := c.List(ctx, &total); err != nil {
		return err
	}
	finished := 0
	for _, n := range total.Items {
		if n.Status.Phase.Finished() {
			finished++
		}
	}
	total.Items = nil
	r["history_finished_notifications"] = float64(finished)
	r["history_active_notifications"] = float64(sz.Active)
	time.Sleep(5 * time.Second)
	rss, heap, err := memory(ctx, mgr)
	if err != nil {
		return err
	}
	r["rss_mib"], r["go_heap_inuse_mib"] = rss, heap
	logf("memory: restarting the manager to measure a fresh start with the same history")
	mgr.Stop()
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	time.Sleep(10 * time.Second)
	if r["rss_mib_fresh_start"], r["go_heap_inuse_mib_fresh_start"], err = memory(ctx, mgr); err != nil {
		return err
	}

	// 7. The fan-out's floor, last so its objects weigh on no other figure,
	// and with the history the fan-out met: the writes a fan-out to
	// FanoutUsers users makes (its children created, then each child's one
	// status write with its delivery records), with the manager stopped.
	logf("fan-out floor: the writes of a %d-user fan-out, manager stopped", sz.FanoutUsers)
	mgr.Stop()
	floor, err := fanoutFloor(ctx, c, "bench-ceiling", sz.FanoutUsers)
	if err != nil {
		return fmt.Errorf("fan-out floor: %w", err)
	}
	r["fanout_floor_messages_per_s"] = float64(sz.FanoutUsers) / floor.Seconds()
	r["fanout_ratio_to_floor"] = r["fanout_recorded_messages_per_s"] / r["fanout_floor_messages_per_s"]
	r["manager_exited_unexpectedly"] = 0
	r["bench_seconds"] = time.Since(began).Seconds()

	print(r, sz, isQuick)
	return write(out, r, sz, isQuick)
}

// latency creates count Notifications at rate/s and returns each one's
// create → finished time as the watch saw it.
func latency(ctx context.Context, c client.Client, tracker *bench.Tracker, ns, prefix string, count int, rate float64, before int) ([]time.Duration, error) {
	created := make([]time.Time, count)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	errs := make(chan error, count)
	for i := range count {
		<-tick.C
		created[i] = time.Now()
		go func(i int) {
			errs <- c.Create(ctx, bench.EmailNotification(ns, fmt.Sprintf("%s-%06d", prefix, i), fmt.Sprintf("%s-%06d@example.com", prefix, i)))
		}(i)
	}
	tick.Stop()
	for range count {
		if err := <-errs; err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
	}
	if err := tracker.WaitCount(ctx, before+count, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	var lat []time.Duration
	for i := range count {
		s, _ := tracker.Finished(fmt.Sprintf("%s-%06d", prefix, i))
		lat = append(lat, s.At.Sub(created[i]))
	}
	return lat, nil
}

// waitQuiet waits until the API server has served no Notification write for a second.
func waitQuiet(ctx context.Context, p *bench.Plane, timeout time.Duration) error {
	last := -1.0
	return bench.Poll(ctx, timeout, time.Second, func() error {
		m, err := p.APIServerMetrics(ctx)
		if err != nil {
			return err
		}
		w := bench.NotificationWrites(m)
		if w != last {
			last = w
			return fmt.Errorf("still writing")
		}
		return nil
	})
}

func memory(ctx context.Context, m *bench.Manager) (rssMiB, heapMiB float64, err error) {
	rss, err := m.RSSBytes()
	if err != nil {
		return 0, 0, err
	}
	mm, err := m.Metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	return float64(rss) / (1 << 20), mm.Sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20), nil
}

var rows = []result{
	{key: "api_ceiling_pairs_per_s", label: "API ceiling (create + status update)", unit: "pairs/s"},
	{key: "notifications_per_s", label: "notifications created → Sent", unit: "/s"},
	{key: "api_raw_ceiling_pairs_per_s", label: "API ceiling, schema-less CRD, same objects", unit: "pairs/s"},
	{key: "ratio_to_ceiling", label: "ratio to ceiling", target: "≥ 0.8"},
	{key: "ratio_to_raw_ceiling", label: "ratio to the schema-less ceiling"},
	{key: "fanout_messages_per_s", label: "fan-out messages at the provider", unit: "/s", target: "≥ 5000"},
	{key: "fanout_recorded_messages_per_s", label: "fan-out, until the parent is Sent", unit: "/s"},
	{key: "fanout_floor_messages_per_s", label: "fan-out floor: its writes alone, no manager", unit: "/s"},
	{key: "fanout_ratio_to_floor", label: "fan-out until Sent, ratio to the floor"},
	{key: "latency_rate_per_s", label: "steady rate for latency: half the ceiling", unit: "/s"},
	{key: "latency_p50_ms", label: "create → Ready p50 at half the ceiling", unit: "ms", target: "≤ 50"},
	{key: "latency_p99_ms", label: "create → Ready p99 at half the ceiling", unit: "ms", target: "≤ 300"},
	{key: "sustained_latency_p50_ms", label: "create → Ready p50 at a sustainable rate", unit: "ms"},
	{key: "sustained_latency_p99_ms", label: "create → Ready p99 at a sustainable rate", unit: "ms"},
	{key: "rss_mib", label: "manager RSS (separate process)", unit: "MiB", target: "≤ 150"},
	{key: "go_heap_inuse_mib", label: "manager Go heap in use", unit: "MiB"},
	{key: "rss_mib_fresh_start", label: "manager RSS after a restart", unit: "MiB"},
	{key: "history_finished_notifications", label: "finished notifications in the cluster"},
	{key: "etcd_bytes_per_notification", label: "etcd growth per finished notification", unit: "B", target: "≤ 4096"},
	{key: "stored_notification_json_bytes", label: "one finished notification as JSON", unit: "B"},
	{key: "status_writes_per_notification", label: "status writes per notification", target: "1"},
	{key: "notification_writes_per_notification", label: "all Notification writes per notification (create included)"},
	{key: "writes_per_notification", label: "writes after the create (Notification + Event)", target: "≤ 1.05"},
	{key: "bench_seconds", label: "bench wall time", unit: "s"},
}

func print(r map[string]float64, sz sizes, isQuick bool) {
	var b strings.Builder
	mode := "full"
	if isQuick {
		mode = "quick (counts too small for the figures to mean much)"
	}
	fmt.Fprintf(&b, "\nHerald bench, %s, %d CPUs, %s\n", mode, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "%-44s %12s  %-6s %s\n", "figure", "value", "unit", "target")
	for _, row := range rows {
		fmt.Fprintf(&b, "%-44s %12.2f  %-6s %s\n", row.label, r[row.key], row.unit, row.target)
	}
	fmt.Fprintf(&b, "counts: %+v\n", sz)
	fmt.Print(b.String())
}

func write(out string, r map[string]float64, sz sizes, isQuick bool) error {
	doc := map[string]any{}
	for k, v := range r {
		doc[k] = v
	}
	doc["date"] = time.Now().UTC().Format(time.RFC3339)
	doc["cpus"] = runtime.NumCPU()
	doc["quick"] = isQuick
	doc["counts"] = sz
	doc["manager"] = "separate process (./cmd), default flags, --zap-log-level=error; rss_mib is its VmRSS"
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// sentStatus gives n the status of a notification sent to one address, as
// the manager writes it.
func sentStatus(n *v1alpha1.Notification) {
	now := metav1.Now()
	n.Status = v1alpha1.NotificationStatus{
		ObservedGeneration: 1, Phase: v1alpha1.PhaseSent, StartTime: &now, CompletionTime: &now,
		Summary: v1alpha1.DeliverySummary{Total: 1, Sent: 1},
		Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAllSent, Message: "1 of 1 sent", LastTransitionTime: now, ObservedGeneration: 1},
			{Type: v1alpha1.ConditionFinished, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAllSent, Message: "1 of 1 sent", LastTransitionTime: now, ObservedGeneration: 1},
		},
		Deliveries: []v1alpha1.Delivery{{ID: "r0/email", Recipient: "s***@example.com", Channel: v1alpha1.ChannelEmail, Address: "s***@example.com",
			Provider: "ChannelProvider/log-email", State: v1alpha1.DeliverySent, Attempts: 1, SentTime: &now,
			ProviderMessageID: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
	}
}

// fanoutFloor creates in ns the objects a fan-out to users recipients
// writes (a parent, then its children of the manager's size, 16 at
// a time like the manager's workers), writes each child's status as the
// manager does once its messages are out (every delivery Sent at the first
// attempt), and returns how long that took. The objects stay: nothing is
// measured after.
func fanoutFloor(ctx context.Context, c client.Client, ns string, users int) (time.Duration, error) {
	o := manager.DefaultOptions()
	o.JournalDir = "journal" // as the bench runs the manager
	per := o.DeliveriesPerObject()
	parent := bench.EmailNotification(ns, "floor", "someone@example.com")
	t0 := time.Now()
	if err := c.Create(ctx, parent); err != nil {
		return 0, err
	}
	kids := make([]*v1alpha1.Notification, (users+per-1)/per)
	err := bench.Parallel(ctx, len(kids), 16, func(ctx context.Context, i int) error {
		n := bench.EmailNotification(ns, fmt.Sprintf("floor-%d", i), "someone@example.com")
		n.Labels = map[string]string{v1alpha1.LabelParent: parent.Name}
		n.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(parent, v1alpha1.GroupVersion.WithKind("Notification"))}
		n.Spec.Recipients = nil
		for j := i * per; j < min(users, (i+1)*per); j++ {
			n.Spec.Recipients = append(n.Spec.Recipients, v1alpha1.Recipient{User: fmt.Sprintf("fan-%06d", j)})
		}
		kids[i] = n
		return c.Create(ctx, n)
	})
	if err != nil {
		return 0, err
	}
	err = bench.Parallel(ctx, len(kids), 16, func(ctx context.Context, i int) error {
		n := kids[i]
		sentStatus(n)
		one := n.Status.Deliveries[0]
		n.Status.Deliveries = make([]v1alpha1.Delivery, len(n.Spec.Recipients))
		for j, rc := range n.Spec.Recipients {
			d := one
			d.ID, d.Recipient, d.Address = fmt.Sprintf("r%d/email", j), rc.User, "f***@example.com"
			d.ProviderMessageID = fmt.Sprintf("%08x-55ca-5426-a3c6-cb7c5e7cacb5", i*per+j)
			n.Status.Deliveries[j] = d
		}
		n.Status.Summary = v1alpha1.DeliverySummary{Total: int32(len(n.Spec.Recipients)), Sent: int32(len(n.Spec.Recipients))}
		return c.Status().Update(ctx, n)
	})
	if err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// raw is n as a schema-less RawNotification.
func raw(n *v1alpha1.Notification) (*unstructured.Unstructured, error) {
	m, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(n)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(bench.RawGVK)
	u.SetResourceVersion("")
	return u, nil
}
