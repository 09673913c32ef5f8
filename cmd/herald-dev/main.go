// Command herald-dev runs Herald on a laptop with no cluster: a real etcd and
// kube-apiserver (built by `make controlplane`), Herald's CRDs, development
// providers and samples, and the operator itself, until Ctrl-C. Data persists
// in --data-dir, so a second run picks up where the first stopped.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/internal/scheme"
	"github.com/herald-dev/herald/internal/testenv"
)

func main() {
	var (
		assets  = flag.String("assets", "bin/k8s", "Directory with the kube-apiserver and etcd binaries.")
		dataDir = flag.String("data-dir", "bin/dev", "Directory for etcd data, the kubeconfig and the outbox.")
		crds    = flag.String("crds", "config/crd/bases", "Directory of CRD manifests.")
		admit   = flag.String("admission", "config/admission", "Directory of the admission policies' manifests.")
		samples = flag.String("samples", "config/samples", "Directory of sample manifests to apply; empty applies none.")
		metrics = flag.String("metrics-bind-address", "127.0.0.1:18080", "Address for the manager's metrics; 0 disables.")
		inbound = flag.String("inbound-addr", "127.0.0.1:18443", "Address of the inbound server (receipts, Receivers, unsubscribe links); 0 disables.")
	)
	zo := zap.Options{Development: true}
	zo.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	if err := run(*assets, *dataDir, *crds, *admit, *samples, *metrics, *inbound); err != nil {
		fmt.Fprintln(os.Stderr, "herald-dev:", err)
		os.Exit(1)
	}
}

func run(assets, dataDir, crds, admission, samples, metrics, inbound string) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "etcd"), 0o700); err != nil {
		return err
	}
	step("starting etcd and kube-apiserver (data in %s)", dataDir)
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme.New(),
	}
	te.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dataDir, "etcd")}
	cfg, err := te.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		step("stopping the control plane")
		if err := te.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}()

	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, te.KubeConfig, 0o600); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: te.Scheme})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	step("installing the admission policies from %s", admission)
	if err := testenv.InstallPolicies(ctx, c, admission); err != nil {
		return err
	}

	o := manager.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr = metrics, "0"
	o.OutboxDir = filepath.Join(dataDir, "outbox")
	// The provider fakes listen on this machine.
	o.EgressAllowCIDRs = "127.0.0.0/8,::1/128"
	if inbound != "0" {
		o.InboundAddr, o.InboundPublicURL = inbound, "http://"+inbound
	}
	if err := ensureNamespace(ctx, c, o.Namespace); err != nil {
		return err
	}
	if samples != "" {
		step("applying samples from %s", samples)
		if err := applyDir(ctx, c, samples); err != nil {
			return err
		}
	}
	stopFakes, err := startFakes(ctx, c, "default")
	if err != nil {
		return err
	}
	defer stopFakes()
	mgr, err := manager.New(cfg, o)
	if err != nil {
		return err
	}
	fmt.Printf(`
Herald is running against a local API server. In another shell:

  export KUBECONFIG=%s
  kubectl get herald
  kubectl apply -f config/samples/
  kubectl get notif -w
  kubectl get notif build-1234-failed -o yaml
  tail -f %s/outbox.jsonl     # what the log providers "sent"
  go install ./cmd/kubectl-herald && kubectl herald send --to email:you@example.com --email-subject Hi --text "It works." --wait

To try a real adapter against its loopback fake, name it per channel:
  spec.providers: {email: {name: fake-sendgrid}}   # or fake-smtp, fake-twilio (sms),
                                                    # fake-apns / fake-fcm (push), fake-webhook

Ctrl-C stops everything; data stays in %s (make clean removes it).

`, kubeconfig, o.OutboxDir, dataDir)
	step("starting the operator")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

func step(format string, args ...any) { fmt.Printf(">> "+format+"\n", args...) }

func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// applyDir server-side applies every object in dir's YAML files to the
// default namespace.
func applyDir(ctx context.Context, c client.Client, dir string) error {
	objs, err := testenv.ReadManifests(dir)
	if err != nil {
		return err
	}
	for _, u := range objs {
		if u.GetNamespace() == "" && u.GetKind() != "ClusterChannelProvider" {
			u.SetNamespace("default")
		}
		// Record what kubectl apply would, so a later `kubectl apply -f`
		// of the same files merges cleanly and without warnings.
		last, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		u.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(last)})
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("herald-dev"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s from %s: %w", u.GetKind(), u.GetName(), dir, err)
		}
	}
	return nil
}
