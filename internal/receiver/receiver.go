// Package receiver decides what an outside event means: it reads an
// Alertmanager, GitHub, GitLab or generic JSON payload into params and an
// idempotency key, applies a Receiver's filters, and builds the
// Notification. Pure functions; authentication and HTTP are in
// internal/inbound, the API calls in internal/controller.
package receiver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Event is one outside event, read.
type Event struct {
	// Kind is the event kind the events filter matches (workflow_run,
	// pipeline; alert and generic for the others).
	Kind string
	// Status is what the statuses filter matches (firing, failure, failed...).
	Status string
	// Params become the Notification's params, over the Receiver's.
	Params map[string]any
	// Key identifies the event across the sender's retries; "" when the
	// sender gives none (a generic event without Idempotency-Key).
	Key string
	// Ignore, when set, says why the event asks for nothing (a GitHub ping).
	Ignore string
}

// InvalidError is a payload that cannot be read; the sender is told why.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// decode reads a JSON object, keeping numbers as written (a run id stays
// 12345678901, not 1.2345678901e+10, in a template).
func decode(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return invalid("the body is not a JSON object: %s", cut(err.Error(), 200))
	}
	return nil
}

// Read reads a payload of the Receiver's type. header gives the request's
// headers by name (GitHub's event name, an Idempotency-Key).
func Read(typ v1alpha1.ReceiverType, header func(string) string, body []byte) (Event, error) {
	switch typ {
	case v1alpha1.ReceiverAlertmanager:
		return Alertmanager(body)
	case v1alpha1.ReceiverGitHub:
		return GitHub(header("X-GitHub-Event"), body)
	case v1alpha1.ReceiverGitLab:
		return GitLab(body)
	case v1alpha1.ReceiverGeneric:
		return Generic(body, header("Idempotency-Key"))
	}
	return Event{}, fmt.Errorf("unknown receiver type %q", typ)
}

// Ignored says why a Receiver's filters drop ev, or "".
func Ignored(spec *v1alpha1.ReceiverSpec, ev Event) string {
	if ev.Ignore != "" {
		return ev.Ignore
	}
	events := spec.Events
	if len(events) == 0 {
		switch spec.Type {
		case v1alpha1.ReceiverGitHub:
			events = []string{"workflow_run"}
		case v1alpha1.ReceiverGitLab:
			events = []string{"pipeline"}
		}
	}
	if len(events) > 0 && !slices.Contains(events, ev.Kind) {
		return fmt.Sprintf("event %q is not among spec.events %v", ev.Kind, events)
	}
	if len(spec.Statuses) > 0 && !slices.Contains(spec.Statuses, ev.Status) {
		return fmt.Sprintf("status %q is not among spec.statuses %v", ev.Status, spec.Statuses)
	}
	return ""
}

// maxNameLen leaves room for "-" and the key's hash in a Notification's name.
const maxNameLen = 253 - 1 - 16

// Build makes the Notification for ev. With a key its name is derived from
// it, so a sender's retry finds the first one there (AlreadyExists) and
// creates nothing; the key is also its idempotencyKey.
func Build(r *v1alpha1.Receiver, ev Event) (*v1alpha1.Notification, error) {
	params := map[string]any{}
	if r.Spec.Params != nil && len(r.Spec.Params.Raw) > 0 {
		if err := decode(r.Spec.Params.Raw, &params); err != nil {
			return nil, errors.New("spec.params is not a JSON object")
		}
	}
	for k, v := range ev.Params {
		params[k] = v
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	n := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Labels: map[string]string{v1alpha1.LabelReceiver: r.Name}},
		Spec: v1alpha1.NotificationSpec{
			TemplateRef:       &v1alpha1.LocalObjectReference{Name: r.Spec.TemplateRef.Name},
			Params:            &apiextensionsv1.JSON{Raw: raw},
			Recipients:        slices.Clone(r.Spec.Recipients),
			RecipientSelector: r.Spec.RecipientSelector.DeepCopy(),
			Channels:          slices.Clone(r.Spec.Channels),
			Category:          r.Spec.Category,
			Priority:          r.Spec.Priority,
		},
	}
	base := r.Name
	if len(base) > maxNameLen {
		base = strings.TrimRight(base[:maxNameLen], "-.")
	}
	if ev.Key == "" {
		n.GenerateName = base + "-"
		return n, nil
	}
	// The key is scoped to the Receiver: two Receivers never fold
	// each other's events.
	sum := sha256.Sum256([]byte(r.Name + "\x00" + ev.Key))
	h := hex.EncodeToString(sum[:])
	n.Name = base + "-" + h[:16]
	n.Spec.IdempotencyKey = "receiver-" + h[:40]
	return n, nil
}

func keyOf(parts ...string) string { return strings.Join(parts, "\x00") }

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
