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
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/internal/testenv"
)

// renderDefault renders config/default with kubectl kustomize and starts
// a test API server (stopped when t ends).
func renderDefault(t *testing.T) ([]*unstructured.Unstructured, *testenv.Env) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed to render config/default (apt-get install kubectl)")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.Root(), "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	objs := decode(t, out)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return objs, env
}

// decode splits rendered YAML into objects.
func decode(t *testing.T, out []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// dryRunApply applies u with server-side apply as a dry run, rejecting
// unknown fields (fieldValidation=Strict) as a real install would warn of them.
// u is left as rendered.
func dryRunApply(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	return c.Patch(ctx, u.DeepCopy(), client.Apply, client.DryRunAll, client.FieldOwner("deploy-test"), client.ForceOwnership, client.FieldValidation("Strict"))
}

// A field the API does not know is an error, not a warning lost in the output.
func checkStrict(t *testing.T, ctx context.Context, c client.Client, deployment *unstructured.Unstructured) {
	t.Helper()
	bad := deployment.DeepCopy()
	if err := unstructured.SetNestedField(bad.Object, true, "spec", "template", "spec", "hostNetworking"); err != nil {
		t.Fatal(err)
	}
	err := dryRunApply(ctx, c, bad)
	if err == nil || !strings.Contains(err.Error(), "hostNetworking") {
		t.Errorf("a Deployment with an unknown field was not rejected: %v", err)
	}
}

func TestDefaultKustomizationApplies(t *testing.T) {
	objs, env := renderDefault(t)
	ctx := context.Background()
	kinds := map[string]int{}
	var deployment *unstructured.Unstructured
	var roles []*unstructured.Unstructured
	for _, u := range objs {
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
		if u.GetKind() == "ClusterRole" {
			roles = append(roles, u.DeepCopy())
		}
		if err := dryRunApply(ctx, env.Client, u); err != nil {
			t.Errorf("%s %s rejected: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for kind, n := range map[string]int{"CustomResourceDefinition": 6, "ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1, "Deployment": 1, "ClusterRole": 5, "ServiceAccount": 1, "Service": 2, "Namespace": 1} {
		if kinds[kind] != n {
			t.Errorf("rendered %d %s, want %d", kinds[kind], kind, n)
		}
	}
	if deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	checkStrict(t, ctx, env.Client, deployment)
	checkPolicyBound(t, objs)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); err != nil {
		t.Fatal(err)
	}
	checkRoles(t, ctx, env.Client, roles)
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
	if img := c[0].(map[string]any)["image"]; img != "herald-dev/herald:0.1.0" {
		t.Errorf("image %v, want the published herald-dev/herald:0.1.0", img)
	}
	args, _, _ := unstructured.NestedStringSlice(c[0].(map[string]any), "args")
	if len(args) == 0 || args[0] != "--leader-elect" {
		t.Errorf("manager args %v lack --leader-elect", args)
	}
}

// The user-facing roles split who sends from who configures providers, and
// keep contact data from viewers: checked by the API server's own RBAC
// authorizer (SubjectAccessReview) with each role bound alone.
func checkRoles(t *testing.T, ctx context.Context, c client.Client, roles []*unstructured.Unstructured) {
	t.Helper()
	for _, r := range roles {
		if err := c.Create(ctx, r); err != nil {
			t.Fatalf("creating %s: %v", r.GetName(), err)
		}
	}
	can := func(user, verb, resource string) bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "team", Verb: verb, Group: "notify.herald.dev", Resource: resource}}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	for user, role := range map[string]string{"ci": "herald-notification-sender", "lead": "herald-provider-admin", "watcher": "herald-viewer"} {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: "team"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}}
		if err := c.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		user, verb, resource string
		want                 bool
	}{
		{"ci", "create", "notifications", true},
		{"ci", "watch", "notifications", true},
		{"ci", "get", "templates", true},
		{"ci", "create", "channelproviders", false},
		{"ci", "get", "userpreferences", false},
		{"ci", "delete", "notifications", false},
		{"lead", "create", "channelproviders", true},
		{"lead", "update", "userpreferences", true},
		{"lead", "delete", "notifications", true},
		{"watcher", "list", "notifications", true},
		{"watcher", "get", "channelproviders", true},
		{"watcher", "list", "userpreferences", false},
		{"watcher", "create", "notifications", false},
		{"lead", "create", "receivers", true},
		{"ci", "create", "receivers", false},
		{"watcher", "get", "receivers", true},
	} {
		if got := can(tc.user, tc.verb, tc.resource); got != tc.want {
			t.Errorf("%s %s %s: allowed %v, want %v", tc.user, tc.verb, tc.resource, got, tc.want)
		}
	}
}

// checkPolicyBound: the admission policy's binding names the policy as
// rendered (prefixed), or the policy would enforce nothing.
func checkPolicyBound(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var policy, bound string
	for _, u := range objs {
		switch u.GetKind() {
		case "ValidatingAdmissionPolicy":
			policy = u.GetName()
		case "ValidatingAdmissionPolicyBinding":
			bound, _, _ = unstructured.NestedString(u.Object, "spec", "policyName")
		}
	}
	if policy == "" || bound != policy {
		t.Errorf("the binding names policy %q, the policy rendered is %q", bound, policy)
	}
}
