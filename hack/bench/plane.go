// Package bench is the harness `make bench` and `make soak` share: a control
// plane (kube-apiserver + etcd from bin/k8s) whose API server can be stopped
// and started again on the same port with the same certificates, the manager
// run as its own process (so it can be SIGKILLed and its resident memory
// read), the log provider's outbox, and Prometheus text scraping.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/herald-dev/herald/internal/scheme"
	"github.com/herald-dev/herald/internal/testenv"
)

// Plane is a running kube-apiserver and etcd with Herald's CRDs installed.
type Plane struct {
	Env *envtest.Environment
	// Config is the admin's: it may also read the API server's /metrics.
	Config *rest.Config
	// Client talks to the API server directly, without a cache.
	Client client.Client
	// Kubeconfig is a file for the manager process.
	Kubeconfig string
	dir        string
}

// StartPlane starts a control plane keeping its state under dir. The API
// server's certificates live in dir too, so StopAPIServer and StartAPIServer
// bring it back on the same port with the same serving CA, and clients keep
// working across the outage.
func StartPlane(dir string) (*Plane, error) {
	assets, err := testenv.Assets()
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(testenv.Root(), "config", "crd", "bases")},
		CRDs:                  []*apiextensionsv1.CustomResourceDefinition{rawCRD()},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme.New(),
		// A graceful stop that takes longer ends in SIGKILL.
		ControlPlaneStopTimeout: 10 * time.Second,
	}
	te.ControlPlane.APIServer = &envtest.APIServer{CertDir: certs}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	// The harness itself must not be the bottleneck it measures.
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: te.Scheme})
	if err == nil {
		err = testenv.InstallPolicies(context.Background(), c, testenv.PolicyDir())
	}
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, te.KubeConfig, 0o600); err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Plane{Env: te, Config: cfg, Client: c, Kubeconfig: kc, dir: dir}, nil
}

// RawGVK is a schema-less stand-in for Notification (bench only): the same
// objects stored without Herald's schema, CEL rules or list-map keys, so
// the bench can tell the API server's own cost from the CRD's.
var RawGVK = schema.GroupVersionKind{Group: "bench.herald.dev", Version: "v1", Kind: "RawNotification"}

func rawCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "rawnotifications.bench.herald.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: RawGVK.Group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "rawnotifications", Singular: "rawnotification", Kind: RawGVK.Kind, ListKind: RawGVK.Kind + "List"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: RawGVK.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

// Stop stops the API server and etcd.
func (p *Plane) Stop() error { return p.Env.Stop() }

// StopAPIServer stops the kube-apiserver process; etcd keeps running.
func (p *Plane) StopAPIServer() error { return p.Env.ControlPlane.APIServer.Stop() }

// StartAPIServer starts the kube-apiserver again on the same address and
// waits until it serves.
func (p *Plane) StartAPIServer(ctx context.Context) error {
	if err := p.Env.ControlPlane.APIServer.Start(); err != nil {
		return err
	}
	return p.WaitServing(ctx, time.Minute)
}

// WaitServing waits until the API server answers /readyz.
func (p *Plane) WaitServing(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := p.get(ctx, "/readyz")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("API server not ready after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get fetches a path from the API server as the admin.
func (p *Plane) get(ctx context.Context, path string) ([]byte, error) {
	hc, err := rest.HTTPClientFor(p.Config)
	if err != nil {
		return nil, err
	}
	return httpGet(ctx, hc, strings.TrimSuffix(p.Config.Host, "/")+path)
}

// APIServerMetrics scrapes the API server's /metrics as the admin.
func (p *Plane) APIServerMetrics(ctx context.Context) (Metrics, error) {
	body, err := p.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(body), nil
}

// EtcdURL is etcd's client URL (plain HTTP on 127.0.0.1).
func (p *Plane) EtcdURL() string { return p.Env.ControlPlane.Etcd.URL.String() }
