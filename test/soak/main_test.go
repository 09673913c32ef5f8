// Package soak proves, against a real kube-apiserver and etcd and the manager
// run as its own process, that Herald loses nothing: the manager SIGKILLed
// during a fan-out, providers failing, the API server going away, and a
// corpus of malformed objects. `make test` runs a reduced version of each;
// `make soak` (HERALD_SOAK=full) the full one and prints the figures.
package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/hack/bench"
)

var (
	plane   *bench.Plane
	binary  string
	workDir string
	full    = os.Getenv("HERALD_SOAK") == "full"
)

// scale picks the reduced figure for `make test`, the full one for `make soak`.
func scale[T any](reduced, fullValue T) T {
	if full {
		return fullValue
	}
	return reduced
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	var err error
	workDir, err = os.MkdirTemp("", "herald-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := os.Getenv("HERALD_SOAK_KEEP") != ""
	defer func() {
		if !keep {
			_ = os.RemoveAll(workDir)
		}
	}()
	ctx := context.Background()
	binary = filepath.Join(workDir, "manager")
	if err := bench.BuildManager(ctx, binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	plane, err = bench.StartPlane(filepath.Join(workDir, "plane"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := plane.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	writeFigures()
	if code != 0 || keep {
		fmt.Fprintln(os.Stderr, "soak work directory (manager logs):", workDir)
		keep = true
	}
	return code
}

// startManager starts a manager process with its own outbox and log, and
// stops it when the test ends.
func startManager(t *testing.T, name string, args ...string) (*bench.Manager, string) {
	t.Helper()
	dir := filepath.Join(workDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(dir, "outbox")
	m, err := bench.StartManager(context.Background(), bench.ManagerOptions{
		Binary: binary, Kubeconfig: plane.Kubeconfig, OutboxDir: outbox,
		LogFile: filepath.Join(dir, "manager.log"), Args: args,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m, outbox
}

var (
	figMu   sync.Mutex
	figures = map[string]map[string]any{}
)

// figure records a measured figure: logged now, printed as a table at the
// end and written to $HERALD_SOAK_OUT (JSON) when set.
func figure(t *testing.T, key string, v any) {
	t.Helper()
	t.Logf("FIGURE %s = %v", key, v)
	figMu.Lock()
	defer figMu.Unlock()
	name := t.Name()
	if figures[name] == nil {
		figures[name] = map[string]any{}
	}
	figures[name][key] = v
}

func writeFigures() {
	figMu.Lock()
	defer figMu.Unlock()
	if len(figures) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak figures (%s)\n", map[bool]string{true: "full: HERALD_SOAK=full", false: "reduced"}[full])
	tests := make([]string, 0, len(figures))
	for k := range figures {
		tests = append(tests, k)
	}
	sort.Strings(tests)
	for _, tn := range tests {
		keys := make([]string, 0, len(figures[tn]))
		for k := range figures[tn] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %-28s %-34s %v\n", tn, k, figures[tn][k])
		}
	}
	fmt.Print(b.String())
	if out := os.Getenv("HERALD_SOAK_OUT"); out != "" {
		doc := map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "full": full, "tests": figures}
		data, _ := json.MarshalIndent(doc, "", "  ")
		_ = os.MkdirAll(filepath.Dir(out), 0o755)
		if err := os.WriteFile(out, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}
