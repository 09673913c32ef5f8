package deploy

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/internal/testenv"
)

const releaseNS = "herald-system"

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// renderChart renders charts/herald with helm template, CRDs included.
func renderChart(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "herald", filepath.Join(testenv.Root(), "charts", "herald"), "--namespace", releaseNS, "--include-crds"}
	if values != "" {
		args = append(args, "-f", values)
	}
	return decode(t, run(t, testenv.Tool(t, "helm"), args...))
}

// The monitoring.coreos.com CRDs the ServiceMonitor and PrometheusRule are
// checked against, generated from prometheus-operator's API types (make
// monitoring-crds).
var monitoringCRDs = filepath.Join("testdata", "crds")

func TestChartLints(t *testing.T) {
	chart := filepath.Join(testenv.Root(), "charts", "herald")
	out := run(t, testenv.Tool(t, "helm"), "lint", "--strict", chart, "-f", filepath.Join("testdata", "full-values.yaml"))
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Errorf("helm lint:\n%s", out)
	}
	run(t, testenv.Tool(t, "helm"), "lint", "--strict", chart)
	// The schema catches a mistyped value before anything is rendered.
	cmd := exec.Command(testenv.Tool(t, "helm"), "template", "herald", chart, "--set", "manager.notificationWorker=4")
	if out, err := cmd.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("notificationWorker")) {
		t.Errorf("a misspelt value rendered: %v\n%s", err, out)
	}
}

// Default and full values render objects the API server accepts (server-side
// dry run, unknown fields rejected), and the chart grants what kustomize does.
func TestChartApplies(t *testing.T) {
	env, err := testenv.Start(monitoringCRDs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	for _, ns := range []string{releaseNS, "herald-leases"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, values string
		kinds        map[string]int
	}{
		{"default", "", map[string]int{"CustomResourceDefinition": 6, "ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1, "Deployment": 1, "ClusterRole": 5, "ClusterRoleBinding": 1,
			"Role": 1, "RoleBinding": 1, "ServiceAccount": 1, "Service": 2, "PodDisruptionBudget": 1}},
		{"full", filepath.Join("testdata", "full-values.yaml"), map[string]int{"CustomResourceDefinition": 6, "ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1, "Deployment": 1, "ClusterRole": 5,
			"ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "ServiceAccount": 1, "Service": 2, "PodDisruptionBudget": 1,
			"NetworkPolicy": 1, "ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderChart(t, tc.values)
			kinds := map[string]int{}
			byKind := map[string][]*unstructured.Unstructured{}
			for _, u := range objs {
				kinds[u.GetKind()]++
				byKind[u.GetKind()] = append(byKind[u.GetKind()], u)
				if err := dryRunApply(ctx, env.Client, u); err != nil {
					t.Errorf("%s %s rejected: %v", u.GetKind(), u.GetName(), err)
				}
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Errorf("rendered %v, want %v", kinds, tc.kinds)
			}
			if len(byKind["Deployment"]) != 1 {
				t.FailNow()
			}
			d := byKind["Deployment"][0]
			checkStrict(t, ctx, env.Client, d)
			checkDeployment(t, tc.name, d)
			checkSameRoles(t, byKind["ClusterRole"])
			checkPolicyBound(t, objs)
			if tc.name == "full" {
				checkMonitoring(t, byKind)
			}
		})
	}
	t.Run("notes", func(t *testing.T) { checkNotes(t, ctx, env.Client) })
	// kustomize's optional monitoring (ServiceMonitor, PrometheusRule,
	// dashboard ConfigMap) holds the same rules and dashboard.
	t.Run("kustomize-monitoring", func(t *testing.T) {
		out := run(t, "kubectl", "kustomize", filepath.Join(testenv.Root(), "config", "monitoring"))
		byKind := map[string][]*unstructured.Unstructured{}
		for _, u := range decode(t, out) {
			byKind[u.GetKind()] = append(byKind[u.GetKind()], u)
			if err := dryRunApply(ctx, env.Client, u); err != nil {
				t.Errorf("%s %s rejected: %v", u.GetKind(), u.GetName(), err)
			}
		}
		if len(byKind["ServiceMonitor"]) != 1 || len(byKind["PrometheusRule"]) != 1 || len(byKind["ConfigMap"]) != 1 {
			t.Fatalf("config/monitoring renders %v", byKind)
		}
		checkMonitoring(t, byKind)
	})
}

// The next step NOTES.txt gives (a provider and a test Notification) is
// accepted as written.
func checkNotes(t *testing.T, ctx context.Context, c client.Client) {
	out := string(run(t, testenv.Tool(t, "helm"), "install", "herald", filepath.Join(testenv.Root(), "charts", "herald"), "-n", releaseNS, "--dry-run=client"))
	_, notes, ok := strings.Cut(out, "NOTES:")
	_, doc, ok2 := strings.Cut(notes, "<<'YAML'\n")
	doc, _, ok3 := strings.Cut(doc, "\nYAML\n")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("NOTES give no YAML to apply:\n%s", notes)
	}
	objs := decode(t, []byte(doc))
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, u := range objs {
		kinds[u.GetKind()]++
		u.SetNamespace("demo")
		if err := dryRunApply(ctx, c, u); err != nil {
			t.Errorf("NOTES' %s rejected: %v", u.GetKind(), err)
		}
	}
	if kinds["ChannelProvider"] != 1 || kinds["Notification"] != 1 {
		t.Errorf("NOTES apply %v, want a ChannelProvider and a Notification", kinds)
	}
}

func checkDeployment(t *testing.T, name string, d *unstructured.Unstructured) {
	t.Helper()
	pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	c := pod["containers"].([]any)[0].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("container securityContext not hardened: %v", sc)
	}
	if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
		t.Error("pod does not set runAsNonRoot")
	}
	if _, ok, _ := unstructured.NestedMap(pod, "affinity", "podAntiAffinity"); !ok {
		t.Error("no pod anti-affinity")
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	var memLimit bool
	for _, e := range env {
		if e.(map[string]any)["name"] == "GOMEMLIMIT" {
			memLimit = true
		}
	}
	if !memLimit {
		t.Error("no GOMEMLIMIT")
	}
	for _, p := range []string{"livenessProbe", "readinessProbe"} {
		if _, ok := c[p]; !ok {
			t.Errorf("no %s", p)
		}
	}

	// Every manager flag is set, and the manager's own flag set parses the
	// arguments: a flag the chart misses or misspells fails here.
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o := manager.DefaultOptions()
	unsubKeyFile := manager.BindFlags(fs, &o)
	(&zap.Options{}).BindFlags(fs)
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	set := map[string]bool{}
	for _, a := range args {
		set[strings.SplitN(strings.TrimPrefix(a, "--"), "=", 2)[0]] = true
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if !set[f.Name] {
			missing = append(missing, f.Name)
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags the chart does not set: %v", missing)
	}
	expanded := make([]string, len(args))
	for i, a := range args {
		expanded[i] = strings.ReplaceAll(a, "$(POD_NAMESPACE)", releaseNS)
	}
	if err := fs.Parse(expanded); err != nil {
		t.Fatalf("the manager rejects the chart's arguments %v: %v", args, err)
	}
	image, _ := c["image"].(string)
	r, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas")
	replicas := fmt.Sprint(r)
	switch name {
	case "default":
		if image != "herald-dev/herald:0.1.0" || replicas != "2" || !o.LeaderElection || o.Namespace != releaseNS || !o.AuditLog {
			t.Errorf("default: image %q replicas %s options %+v", image, replicas, o)
		}
	case "full":
		if *unsubKeyFile == "" {
			t.Error("full: no --unsubscribe-key-file")
		}
		if image != "registry.example.com/herald@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" || replicas != "3" {
			t.Errorf("full: image %q replicas %s", image, replicas)
		}
		if o.NotificationWorkers != 32 || o.QPS != 50.5 || o.AuditLog || o.MetricsNamespaceLabelLimit != 20 ||
			o.LeaderElectionNamespace != "herald-leases" || o.MetricsAddr != ":9090" || o.EgressAllowCIDRs != "10.0.5.0/24,10.0.6.0/24" ||
			o.InboundAddr != ":8443" || o.InboundPublicURL != "https://herald.example.com" || o.InboundCertDir == "" || o.InboundRatePerSecond != 20 {
			t.Errorf("full values did not reach the manager: %+v", o)
		}
	}
}

// The chart's ClusterRoles are config/rbac's, rule for rule.
func checkSameRoles(t *testing.T, chartRoles []*unstructured.Unstructured) {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(testenv.Root(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	want := map[string]any{}
	for _, u := range decode(t, out) {
		if u.GetKind() == "ClusterRole" {
			want[u.GetName()] = u.Object["rules"]
		}
	}
	got := map[string]any{}
	for _, u := range chartRoles {
		got[u.GetName()] = u.Object["rules"]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("chart ClusterRoles differ from config/default's:\nchart %v\nkustomize %v", got, want)
	}
}

func checkMonitoring(t *testing.T, byKind map[string][]*unstructured.Unstructured) {
	t.Helper()
	rules, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "prometheus", "herald-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(rules, &want); err != nil {
		t.Fatal(err)
	}
	if got := byKind["PrometheusRule"][0].Object["spec"]; !reflect.DeepEqual(got, want) {
		t.Errorf("PrometheusRule spec is not config/prometheus/herald-rules.yaml")
	}
	cm := byKind["ConfigMap"][0]
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.GetLabels())
	}
	dash, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "grafana", "herald.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "herald.json")
	if strings.TrimSpace(data) != strings.TrimSpace(string(dash)) {
		t.Error("dashboard ConfigMap does not hold config/grafana/herald.json")
	}
}

// The chart ships copies of the generated CRDs (make chart-files).
func TestChartCRDsAreCurrent(t *testing.T) {
	src, _ := filepath.Glob(filepath.Join(testenv.Root(), "config", "crd", "bases", "*.yaml"))
	dst, _ := filepath.Glob(filepath.Join(testenv.Root(), "charts", "herald", "crds", "*.yaml"))
	if len(src) == 0 || len(src) != len(dst) {
		t.Fatalf("%d CRDs in config/crd/bases, %d in the chart: run make chart-files", len(src), len(dst))
	}
	for _, f := range src {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(testenv.Root(), "charts", "herald", "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/herald/crds/%s is stale: run make chart-files", filepath.Base(f))
		}
	}
}
