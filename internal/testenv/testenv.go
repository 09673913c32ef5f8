// Package testenv starts a real kube-apiserver and etcd (built by `make
// controlplane` into bin/) with Herald's CRDs installed, for tests that must
// talk to the real thing.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/herald-dev/herald/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	// Client talks to the API server directly (no cache): tests assert what is stored.
	Client client.Client
}

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Assets is the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS,
// else the newest bin/k8s/* that `make controlplane` built.
func Assets() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob(filepath.Join(Root(), "bin", "k8s", "*", "kube-apiserver"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no kube-apiserver under bin/k8s: run `make controlplane` (or `make test`) first")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// Start starts a control plane with Herald's CRDs and admission policies
// installed, and the CRDs in extraCRDDirs. Stop it with Stop.
func Start(extraCRDDirs ...string) (*Env, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(Root(), "config", "crd", "bases")}, extraCRDDirs...),
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme.New(),
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: te.Scheme})
	if err == nil {
		err = InstallPolicies(context.Background(), c, PolicyDir())
	}
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{Environment: te, Config: cfg, Client: c}, nil
}

// Main runs a package's tests against one control plane shared by all of
// them, stored in *env. Use it from TestMain.
func Main(m *testing.M, env **Env) {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}

// FreeAddr is a loopback address with a port free now, for a server the
// test starts (metrics, probes).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := LoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// LoopbackAddr is a free 127.0.0.1 port for a server a test or bench starts.
func LoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Tool is the path of a binary `make tools` builds into bin/ (helm,
// promtool); the test fails with how to build it when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Root(), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make tools` (make test does)", p)
	}
	return p
}
