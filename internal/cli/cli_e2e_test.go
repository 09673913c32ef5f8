package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/senders/fake"
	fakewebhook "github.com/herald-dev/herald/senders/fake/webhook"
)

var (
	env        *testenv.Env
	kubeconfig string
)

// TestMain starts an API server and a manager: the CLI is tried as a
// pipeline would use it, against the real thing.
func TestMain(m *testing.M) {
	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env = e
	dir, err := os.MkdirTemp("", "herald-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, e.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	o := manager.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.Namespace = "0", "0", "default"
	o.OutboxDir = dir
	o.EgressAllowCIDRs = "127.0.0.0/8" // the webhook fake
	o.MaxDeliveriesPerObject = 2       // so a five-user fan-out has children
	o.DrainTimeout = time.Second
	mgr, err := manager.New(e.Config, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	<-done
	_ = e.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the CLI.
type result struct {
	code        int
	out, errOut string
	took        time.Duration
}

// run runs kubectl-herald with args (plus --kubeconfig and -n ns) and the
// environment vars, as a process would, and returns its exit status and output.
func run(t *testing.T, ns string, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		func(k string) string { return vars[k] })
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...))
	start := time.Now()
	err := cmd.Execute()
	r := result{code: cli.ExitCode(err), out: out.String(), errOut: errOut.String(), took: time.Since(start)}
	if err != nil {
		r.errOut += "error: " + err.Error() + "\n"
	}
	t.Logf("kubectl herald %s → exit %d in %s\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), r.out, r.errOut)
	return r
}

var nsSeq int

// namespace creates a namespace (namespaceNamed: of that name) with log providers as defaults for every
// channel (they always succeed) and users ana and ben.
func namespace(t *testing.T) string {
	t.Helper()
	nsSeq++
	return namespaceNamed(t, fmt.Sprintf("cli-%d", nsSeq))
}

func namespaceNamed(t *testing.T, ns string) string {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, ch := range v1alpha1.AllChannels {
		p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "log-" + string(ch), Namespace: ns},
			Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Default: true, Log: &v1alpha1.LogConfig{Channel: ch}}}
		create(t, p)
		ready(t, p)
	}
	for _, u := range []string{"ana", "ben"} {
		create(t, &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: u, Namespace: ns, Labels: map[string]string{"team": "platform"}},
			Spec: v1alpha1.UserPreferenceSpec{Email: u + "@example.com"}})
	}
	create(t, &v1alpha1.Template{ObjectMeta: metav1.ObjectMeta{Name: "build-failed", Namespace: ns},
		Spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{
			Email: &v1alpha1.EmailContent{Subject: "Build {{ .Params.build }} failed", Text: "see {{ .Params.url }}"}}}})
	return ns
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// ready waits for a provider to be Ready.
func ready(t *testing.T, p *v1alpha1.ChannelProvider) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err == nil &&
			meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("provider %s not Ready: %+v", p.Name, p.Status.Conditions)
}

func notifications(t *testing.T, ns string) []v1alpha1.Notification {
	t.Helper()
	var list v1alpha1.NotificationList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestSendWaitSent(t *testing.T) {
	ns := namespace(t)
	r := run(t, ns, nil, "send", "--template", "build-failed", "--param", "build=1234", "--param", "url=https://ci.example/1234",
		"--to", "user:ana,email:oncall@example.com", "--wait", "--timeout", "60s")
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d, want 0", r.code)
	}
	for _, want := range []string{"created", "ana (a***@example.com)", "o***@example.com", "Sent: 2 sent, 0 failed"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if lines := strings.Count(r.out, "attempts=1"); lines != 2 {
		t.Errorf("%d delivery lines, want one per delivery (2)", lines)
	}
	if strings.Contains(r.out+r.errOut, "oncall@example.com") || strings.Contains(r.out+r.errOut, "ana@example.com") {
		t.Error("an address was printed in full")
	}
}

func TestSendWaitProviderFailure(t *testing.T) {
	ns := namespace(t)
	srv, err := fakewebhook.New(fakewebhook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	srv.Script.SetRates(fake.Rate{P: 1, Fault: fake.Fault{Status: 400}})
	p := &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: ns},
		Spec: v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderWebhook, Webhook: &v1alpha1.WebhookConfig{URL: srv.URL() + "/hooks/chat"}}}
	create(t, p)
	ready(t, p)
	r := run(t, ns, nil, "send", "--webhook-text", "deploy failed", "--to", "webhook:chat", "--wait", "--timeout", "60s")
	if r.code != cli.ExitFailed {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if !strings.Contains(r.out, "ChannelProvider/chat") || !strings.Contains(r.out, "Failed") {
		t.Errorf("the failed delivery was not printed:\n%s", r.out)
	}
	if !strings.Contains(r.errOut, "ended Failed") {
		t.Errorf("the error does not say the Notification failed:\n%s", r.errOut)
	}
}

func TestSendBadInput(t *testing.T) {
	ns := namespace(t)
	r := run(t, ns, nil, "send", "--sms", "hi", "--to", "phone:12345", "--wait")
	if r.code != cli.ExitInvalid {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if !strings.Contains(r.errOut, "spec.recipients[0].phone") {
		t.Errorf("the error does not name spec.recipients[0].phone:\n%s", r.errOut)
	}
	if n := len(notifications(t, ns)); n != 0 {
		t.Errorf("%d Notifications exist after a refused send", n)
	}
	// Refused before the API server is asked: a flag of the wrong shape.
	if r := run(t, ns, nil, "send", "--sms", "hi", "--to", "fax:123"); r.code != cli.ExitInvalid || !strings.Contains(r.errOut, "--to") {
		t.Errorf("unknown recipient kind: exit %d, want 2 naming --to", r.code)
	}
	if r := run(t, ns, nil, "send", "--no-such-flag"); r.code != cli.ExitInvalid {
		t.Errorf("unknown flag: exit %d, want 2", r.code)
	}
}

// A Template that does not exist ends Failed at expiresAfter: the step
// fails then, not at its timeout.
func TestSendMissingTemplateFailsFast(t *testing.T) {
	ns := namespace(t)
	r := run(t, ns, nil, "send", "--template", "no-such-template", "--to", "user:ana", "--expires-after", "3s", "--wait", "--timeout", "2m")
	if r.code != cli.ExitFailed {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if r.took > 30*time.Second {
		t.Errorf("took %s: it should end at expiresAfter (3s), well before the 2m timeout", r.took)
	}
	if !strings.Contains(r.errOut, "TemplateNotFound") {
		t.Errorf("the error does not give the reason TemplateNotFound:\n%s", r.errOut)
	}
}

func TestWaitTimeout(t *testing.T) {
	ns := namespace(t)
	r := run(t, ns, nil, "send", "--name", "later", "--email-subject", "s", "--text", "t", "--to", "user:ana", "--send-at", "+1h", "--wait", "--timeout", "2s")
	if r.code != cli.ExitTimeout {
		t.Fatalf("exit %d, want 3", r.code)
	}
	if !strings.Contains(r.errOut, "timed out") || !strings.Contains(r.errOut, "Scheduled") {
		t.Errorf("the error does not say it timed out while Scheduled:\n%s", r.errOut)
	}
	if r.took > 20*time.Second {
		t.Errorf("took %s for a 2s timeout", r.took)
	}
	if r := run(t, ns, nil, "wait", "later", "--timeout", "0"); r.code != cli.ExitTimeout {
		t.Errorf("wait --timeout 0 on a scheduled Notification: exit %d, want 3", r.code)
	}
}

// The same pipeline run sends once: a retried step finds the first
// Notification by the key derived from the run id, and exits 0 saying so.
func TestIdempotencyFromCIRunID(t *testing.T) {
	ns := namespace(t)
	ci := map[string]string{"GITHUB_RUN_ID": "987654"}
	args := []string{"send", "--template", "build-failed", "--param", "build=7", "--param", "url=u", "--selector", "team=platform", "--wait", "--timeout", "60s"}
	first := run(t, ns, ci, args...)
	if first.code != cli.ExitOK || !strings.Contains(first.out, "idempotency key github-987654-") {
		t.Fatalf("first run: exit %d, or no key from GITHUB_RUN_ID", first.code)
	}
	second := run(t, ns, ci, args...)
	if second.code != cli.ExitOK {
		t.Fatalf("second run: exit %d, want 0", second.code)
	}
	if !strings.Contains(second.out, "duplicate of notification/") || !strings.Contains(second.out, "nothing sent again") {
		t.Errorf("second run does not say it was a duplicate:\n%s", second.out)
	}
	phases := map[v1alpha1.NotificationPhase]int{}
	sent := int32(0)
	for _, n := range notifications(t, ns) {
		phases[n.Status.Phase]++
		sent += n.Status.Summary.Sent
	}
	if phases[v1alpha1.PhaseSent] != 1 || phases[v1alpha1.PhaseSuppressed] != 1 || sent != 2 {
		t.Errorf("phases %v, %d messages sent; want one Sent (2 messages) and one Suppressed", phases, sent)
	}
	// Another alert in the same run is not a duplicate.
	if r := run(t, ns, ci, "send", "--template", "build-failed", "--param", "build=8", "--param", "url=u", "--to", "user:ana", "--wait"); r.code != cli.ExitOK || strings.Contains(r.out, "duplicate") {
		t.Errorf("a different message in the same run: exit %d, duplicate=%v", r.code, strings.Contains(r.out, "duplicate"))
	}
}

func TestOutputJSON(t *testing.T) {
	ns := namespace(t)
	r := run(t, ns, nil, "send", "--sms", "hello", "--to", "phone:+14155550100", "--wait", "-o", "json")
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d", r.code)
	}
	var n v1alpha1.Notification
	if err := json.Unmarshal([]byte(r.out), &n); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.out)
	}
	if n.Kind != "Notification" || n.Status.Phase != v1alpha1.PhaseSent || len(n.Status.Deliveries) != 1 {
		t.Errorf("got kind %q phase %q with %d deliveries, want the finished Notification", n.Kind, n.Status.Phase, len(n.Status.Deliveries))
	}
	if !strings.Contains(r.errOut, "Sent: 1 sent") {
		t.Errorf("progress did not go to stderr:\n%s", r.errOut)
	}
	name := run(t, ns, nil, "get", n.Name, "-o", "name")
	if strings.TrimSpace(name.out) != "notification.notify.herald.dev/"+n.Name {
		t.Errorf("get -o name printed %q", name.out)
	}
}

// A fan-out split into children: wait prints every child's delivery, get
// and describe aggregate them, history lists the parent alone.
func TestFanOutAggregated(t *testing.T) {
	ns := namespace(t)
	for _, u := range []string{"cy", "dee", "eli"} {
		create(t, &v1alpha1.UserPreference{ObjectMeta: metav1.ObjectMeta{Name: u, Namespace: ns, Labels: map[string]string{"team": "platform"}},
			Spec: v1alpha1.UserPreferenceSpec{Email: u + "@example.com"}})
	}
	r := run(t, ns, nil, "send", "--name", "all-hands", "--email-subject", "Hi", "--text", "all", "--selector", "team=platform", "--wait", "--timeout", "60s")
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d", r.code)
	}
	if lines := strings.Count(r.out, "attempts=1"); lines != 5 {
		t.Errorf("wait printed %d delivery lines, want 5 (one per user, from the children)", lines)
	}
	get := run(t, ns, nil, "get", "all-hands")
	if !strings.Contains(get.out, "NOTIFICATION") || strings.Count(get.out, " Sent ") != 5 ||
		!strings.Contains(get.out, "all-hands-0") || !strings.Contains(get.out, "all-hands-2") {
		t.Errorf("get does not show the 5 deliveries of the 3 children:\n%s", get.out)
	}
	desc := run(t, ns, nil, "describe", "all-hands")
	for _, want := range []string{"Selector:", "team=platform", "Phase:", "Sent", "Children:", "Conditions:", "Finished", "Deliveries:", "Events:", "AllSent"} {
		if !strings.Contains(desc.out, want) {
			t.Errorf("describe lacks %q", want)
		}
	}
	hist := run(t, ns, nil, "history")
	if strings.Count(hist.out, "all-hands") != 1 {
		t.Errorf("history should list the parent once, not its children:\n%s", hist.out)
	}
}
