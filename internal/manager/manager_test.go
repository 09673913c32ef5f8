package manager

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The manager elects a leader, serves metrics and probes, and on shutdown
// returns cleanly and releases its Lease.
func TestManagerLifecycle(t *testing.T) {
	o := DefaultOptions()
	o.MetricsAddr, o.ProbeAddr = testenv.FreeAddr(t), testenv.FreeAddr(t)
	o.LeaderElection, o.LeaderElectionNamespace = true, "default"
	o.Namespace = "default"
	mgr, err := New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	lease := &coordinationv1.Lease{}
	key := types.NamespacedName{Namespace: "default", Name: LeaderElectionID}
	eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(ctx, key, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	})
	select {
	case <-mgr.Elected():
	case <-time.After(10 * time.Second):
		t.Fatal("lease held but manager not elected")
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, 10*time.Second, func() error {
			code, body, err := get("http://" + o.ProbeAddr + path)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("%s: %d %q %v", path, code, body, err)
			}
			return nil
		})
	}
	eventually(t, 10*time.Second, func() error {
		code, body, err := get("http://" + o.MetricsAddr + "/metrics")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("metrics: %d %v", code, err)
		}
		// controller-runtime's own metrics prove our controllers are registered.
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="notification"`) {
			return fmt.Errorf("metrics lack the notification controller")
		}
		return nil
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("manager stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop within 30s")
	}
	if err := env.Client.Get(context.Background(), key, lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("lease still held by %q after shutdown", *lease.Spec.HolderIdentity)
	}
}
