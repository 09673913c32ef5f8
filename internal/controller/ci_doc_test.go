package controller_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/testenv"
)

// docs/ci.md's script runs as written against the test cluster with the
// manager: it sends, waits for Finished and exits 0; run again for the same
// pipeline run (a retried step) it sends nothing new and still exits 0.
func TestCIDocScript(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed (apt-get install kubectl)")
	}
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## With kubectl alone\n.*?```sh\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/ci.md has no script under 'With kubectl alone'")
	}
	script := string(m[1])

	ns := namespace(t, "team-builds")
	logProviders(t, ns)
	create(t, &v1alpha1.Template{ObjectMeta: metav1.ObjectMeta{Name: "build-failed", Namespace: ns},
		Spec: v1alpha1.TemplateSpec{Channels: v1alpha1.ChannelContent{
			Email: &v1alpha1.EmailContent{Subject: "Build {{ .Params.build }} failed", Text: "{{ .Params.url }}"}}}})
	for _, name := range []string{"ana", "ben"} {
		user(t, ns, name, v1alpha1.UserPreferenceSpec{Email: name + "@example.com"}, map[string]string{"team": "platform"})
	}

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		cmd := exec.CommandContext(ctxT(), "bash", "-euc", script)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kc, "CI_RUN_ID=4711", "CI_RUN_URL=https://ci.example/runs/4711",
			"PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("the script failed (%v):\n%s", err, out.String())
		}
		return out.String()
	}
	first := run()
	if !strings.Contains(first, "Sent") {
		t.Errorf("first run printed no Sent delivery:\n%s", first)
	}
	run() // a retried step: same run id, same key
	var list v1alpha1.NotificationList
	if err := env.Client.List(ctxT(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	phases := map[v1alpha1.NotificationPhase]int{}
	for _, n := range list.Items {
		phases[n.Status.Phase]++
	}
	if len(list.Items) != 2 || phases[v1alpha1.PhaseSent] != 1 || phases[v1alpha1.PhaseSuppressed] != 1 {
		t.Errorf("phases %v, want one Sent and one Suppressed (duplicate key)", phases)
	}
}
