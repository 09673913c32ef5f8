package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/testenv"
)

// tektonTask is the part of a Tekton Task the test runs.
type tektonTask struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Params []struct {
			Name    string `json:"name"`
			Default any    `json:"default"`
		} `json:"params"`
		Steps []struct {
			Image   string   `json:"image"`
			Command []string `json:"command"`
			Args    []string `json:"args"`
			Env     []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"env"`
		} `json:"steps"`
	} `json:"spec"`
}

// config/ci's Tekton Task runs as Tekton would run it (its variables
// substituted) against the test cluster: it sends and exits 0; a retry of
// the TaskRun (same name) sends nothing new and exits 0 too.
func TestTektonTask(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "ci", "herald-send-task.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var task tektonTask
	if err := yaml.Unmarshal(b, &task); err != nil {
		t.Fatal(err)
	}
	if task.APIVersion != "tekton.dev/v1" || task.Kind != "Task" || len(task.Spec.Steps) != 1 {
		t.Fatalf("not a one-step tekton.dev/v1 Task: %s %s, %d steps", task.APIVersion, task.Kind, len(task.Spec.Steps))
	}
	ns := namespace(t)
	vars := map[string]string{"context.taskRun.namespace": ns, "context.taskRun.name": "nightly-alert-x2k9", "params.image": "unused"}
	for _, p := range task.Spec.Params {
		if s, ok := p.Default.(string); ok {
			vars["params."+p.Name] = s
		}
	}
	arrayArgs := []string{"--template", "build-failed", "--param", "build=42", "--param", "url=https://ci.example/42", "--selector", "team=platform"}
	step := task.Spec.Steps[0]
	if len(step.Command) != 1 || step.Command[0] != "kubectl-herald" {
		t.Fatalf("the step runs %v, want kubectl-herald", step.Command)
	}
	var args []string
	for _, a := range step.Args {
		if a == "$(params.args[*])" {
			args = append(args, arrayArgs...)
			continue
		}
		args = append(args, substitute(t, a, vars))
	}
	envVars := map[string]string{}
	for _, e := range step.Env {
		envVars[e.Name] = substitute(t, e.Value, vars)
	}
	for range 2 { // the TaskRun, then its retry
		r := run(t, ns, envVars, args...)
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d", r.code)
		}
	}
	phases := map[v1alpha1.NotificationPhase]int{}
	for _, n := range notifications(t, ns) {
		phases[n.Status.Phase]++
	}
	if len(phases) != 2 || phases[v1alpha1.PhaseSent] != 1 || phases[v1alpha1.PhaseSuppressed] != 1 {
		t.Errorf("phases %v, want one Sent and its retry Suppressed", phases)
	}
}

var tektonVar = regexp.MustCompile(`\$\(([^)]+)\)`)

// substitute replaces Tekton's $(name) variables, failing on one it does not know.
func substitute(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return tektonVar.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := vars[m[2:len(m)-1]]
		if !ok {
			t.Fatalf("the Task uses %s, which the test does not provide", m)
		}
		return v
	})
}

// docs/ci.md's GitHub Actions step runs as the runner would run it: its
// ${{ }} expressions filled in, `kubectl herald` found by kubectl on the
// PATH, against the test cluster.
func TestGitHubActionsSnippet(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed (apt-get install kubectl)")
	}
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### GitHub Actions\n\n```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/ci.md has no yaml block under 'GitHub Actions'")
	}
	var steps []struct {
		Run string            `json:"run"`
		Env map[string]string `json:"env"`
	}
	if err := yaml.Unmarshal(m[1], &steps); err != nil || len(steps) != 1 || steps[0].Run == "" {
		t.Fatalf("the snippet is not one step with run: %v", err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-herald"), "./cmd/kubectl-herald")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-herald: %v\n%s", err, out)
	}
	github := map[string]string{"runner.temp": dir, "github.run_number": "77", "github.run_id": "5550001",
		"github.server_url": "https://github.example", "github.repository": "acme/app"}
	expr := regexp.MustCompile(`\$\{\{\s*([^}]+?)\s*\}\}`)
	fill := func(s string) string {
		return expr.ReplaceAllStringFunc(s, func(e string) string {
			v, ok := github[expr.FindStringSubmatch(e)[1]]
			if !ok {
				t.Fatalf("the snippet uses %s, which the test does not provide", e)
			}
			return v
		})
	}
	environ := append(os.Environ(), "GITHUB_RUN_ID=5550001", "PATH="+dir+":"+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
	for k, v := range steps[0].Env {
		environ = append(environ, k+"="+fill(v))
	}
	kc, _ := os.ReadFile(kubeconfig)
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kc, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := namespaceNamed(t, "team-builds")
	cmd := exec.CommandContext(context.Background(), "bash", "-eo", "pipefail", "-c", fill(steps[0].Run))
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the step failed (%v):\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Sent: 2 sent") || !strings.Contains(out.String(), "idempotency key github-5550001-") {
		t.Errorf("the step did not report 2 messages Sent with a key from the run id:\n%s", out.String())
	}
	if n := notifications(t, ns); len(n) != 1 || n[0].Status.Phase != v1alpha1.PhaseSent {
		t.Errorf("%d Notifications in %s, want 1 Sent", len(n), ns)
	}
}
