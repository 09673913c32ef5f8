package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// PolicyDir is where the admission policies live (config/admission).
func PolicyDir() string { return filepath.Join(Root(), "config", "admission") }

// ReadManifests decodes every object in dir's YAML files, in file order;
// kustomize's own files (kustomization.yaml, kustomizeconfig.yaml) are
// not objects and are skipped.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "kustomiz") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	return objs, nil
}

// InstallPolicies applies the ValidatingAdmissionPolicies and bindings in
// dir's manifests and waits until the API server enforces them: it loads
// policies in the background, and a test that edits a Notification right
// after must see them.
func InstallPolicies(ctx context.Context, c client.Client, dir string) error {
	objs, err := ReadManifests(dir)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("no admission policies in %s", dir)
	}
	for _, u := range objs {
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("herald-testenv"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s from %s: %w", u.GetKind(), u.GetName(), dir, err)
		}
	}
	return waitEnforced(ctx, c)
}

// waitEnforced edits a probe Notification's recipients (a dry run) until
// the API server refuses it.
func waitEnforced(ctx context.Context, c client.Client) error {
	probe := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "herald-admission-policy-probe"},
		Spec: v1alpha1.NotificationSpec{
			Content:    &v1alpha1.ChannelContent{SMS: &v1alpha1.SMSContent{Text: "probe"}},
			Recipients: []v1alpha1.Recipient{{Email: "probe@example.com"}},
		},
	}
	if err := c.Create(ctx, probe); apierrors.IsAlreadyExists(err) {
		// Left by a run that stopped before deleting it (make dev keeps its data).
		err = c.Get(ctx, client.ObjectKeyFromObject(probe), probe)
		if err != nil {
			return fmt.Errorf("admission policy probe: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("admission policy probe: %w", err)
	}
	defer func() { _ = c.Delete(context.Background(), probe) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		edited := probe.DeepCopy()
		edited.Spec.Recipients[0].Email = "edited@example.com"
		err := c.Update(ctx, edited, client.DryRunAll)
		if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "spec.recipients") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the admission policies were not enforced within 30s (last answer: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
