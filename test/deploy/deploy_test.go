// Package deploy renders config/default with kustomize and applies it to a
// real API server (server-side dry run), so the install manifests stay valid.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/internal/testenv"
)

func TestDefaultKustomizationApplies(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed to render config/default (apt-get install kubectl)")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.Root(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()

	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	kinds := map[string]int{}
	var deployment *unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		kinds[u.GetKind()]++
		if u.GetKind() == "Namespace" {
			// A dry run creates nothing, so the namespace must exist for real.
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetName()}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if u.GetKind() == "Deployment" {
			deployment = u
		}
		if err := env.Client.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldOwner("deploy-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s %s rejected: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for kind, n := range map[string]int{"CustomResourceDefinition": 5, "Deployment": 1, "ClusterRole": 3, "ServiceAccount": 1, "Service": 1, "Namespace": 1} {
		if kinds[kind] != n {
			t.Errorf("rendered %d %s, want %d", kinds[kind], kind, n)
		}
	}
	if deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	if deployment.GetNamespace() != "herald-system" {
		t.Errorf("Deployment namespace %q, want herald-system", deployment.GetNamespace())
	}
	// The hardening the issue asks for.
	c, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	sc, _, _ := unstructured.NestedMap(c[0].(map[string]any), "securityContext")
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("container securityContext not hardened: %v", sc)
	}
	if nonRoot, _, _ := unstructured.NestedBool(deployment.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); !nonRoot {
		t.Error("pod does not set runAsNonRoot")
	}
	args, _, _ := unstructured.NestedStringSlice(c[0].(map[string]any), "args")
	if len(args) == 0 || args[0] != "--leader-elect" {
		t.Errorf("manager args %v lack --leader-elect", args)
	}
}
