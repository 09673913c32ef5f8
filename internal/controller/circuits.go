package controller

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/route"
)

// Circuits carries the dispatcher's circuit breaker changes to the
// provider reconcilers, which report them as the Available condition. Give
// Changed to dispatch.Options.OnCircuit.
type Circuits struct {
	byKind map[string]chan event.GenericEvent
}

// NewCircuits returns Circuits for both provider kinds.
func NewCircuits() *Circuits {
	return &Circuits{byKind: map[string]chan event.GenericEvent{
		route.KindChannelProvider:        make(chan event.GenericEvent, 256),
		route.KindClusterChannelProvider: make(chan event.GenericEvent, 256),
	}}
}

// Changed asks for key's provider to be reconciled. It never blocks (it
// runs on a dispatch worker): when the buffer is full the change is
// dropped, and the provider's next reconcile reads the state anyway.
func (c *Circuits) Changed(key string, _ dispatch.Circuit) {
	if c == nil {
		return
	}
	kind, rest, _ := strings.Cut(key, "/")
	ch := c.byKind[kind]
	if ch == nil {
		return
	}
	var obj client.Object
	if kind == route.KindClusterChannelProvider {
		obj = &v1alpha1.ClusterChannelProvider{ObjectMeta: metav1.ObjectMeta{Name: rest}}
	} else {
		ns, name, _ := strings.Cut(rest, "/")
		obj = &v1alpha1.ChannelProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	select {
	case ch <- event.GenericEvent{Object: obj}:
	default:
	}
}

// available sets a Ready provider's Available condition from its circuit,
// and removes it from a provider that is not Ready (it has no queue).
func available(conds *[]metav1.Condition, generation int64, ready bool, c dispatch.Circuit, lastErr string) {
	if !ready {
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionAvailable)
		return
	}
	cond := metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, ObservedGeneration: generation,
		Reason: v1alpha1.ReasonCircuitClosed, Message: "sends go through"}
	if c != dispatch.CircuitClosed {
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonCircuitOpen
		cond.Message = truncate("failed too often in a row; not called until a probe succeeds (deliveries go to spec.fallback meanwhile); last error: "+lastErr, 1024)
	}
	meta.SetStatusCondition(conds, cond)
}
