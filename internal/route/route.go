// Package route decides which provider sends a channel (for push, a device
// platform) for a namespace: a Notification's explicit override, else the
// namespace's default ChannelProvider, else a default ClusterChannelProvider
// that allows the namespace. It also names each provider's dispatch queue (Key), so the
// provider reconcilers that fill the queues and the Notification reconciler
// that submits to them agree on the name.
package route

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Provider kinds, as a ProviderReference spells them.
const (
	KindChannelProvider        = "ChannelProvider"
	KindClusterChannelProvider = "ClusterChannelProvider"
)

// Key names a provider's dispatch queue: "ChannelProvider/ns/name" or
// "ClusterChannelProvider/name".
func Key(kind, namespace, name string) string {
	if kind == KindClusterChannelProvider || namespace == "" {
		return kind + "/" + name
	}
	return kind + "/" + namespace + "/" + name
}

// Choice is the provider picked for a channel in a namespace. When Ready is
// false, Reason is v1alpha1.ReasonProviderNotReady and Message says which
// provider (if any) and why; Key, Kind, Name and Spec are set whenever a
// provider was found.
type Choice struct {
	Key, Kind, Name string
	Spec            *v1alpha1.ChannelProviderSpec
	Ready           bool
	Reason, Message string
}

// Provider picks the provider for ch in namespace ns: the explicit override
// (a ChannelProvider in ns, or a ClusterChannelProvider that allows ns), else
// the namespace's default ChannelProvider for the channel (oldest if
// several), else the oldest default ClusterChannelProvider for the channel
// whose allowedNamespaces selects ns. A provider that is found but cannot be
// used (not Ready, not allowed, wrong channel) is reported, not skipped: a
// broken namespace default does not silently fall back to a cluster one.
//
// c is normally the manager's cache. Only API errors are returned; every
// "no usable provider" answer is a Choice with Ready false.
//
// For push, platform is the device's: defaults are per (channel, platform),
// and an explicit provider must serve the platform. It is empty for the
// other channels.
func Provider(ctx context.Context, c client.Reader, ns string, ch v1alpha1.Channel, platform v1alpha1.Platform, override *v1alpha1.ProviderReference) (Choice, error) {
	if override != nil {
		return explicit(ctx, c, ns, ch, platform, override)
	}

	var cps v1alpha1.ChannelProviderList
	if err := c.List(ctx, &cps, client.InNamespace(ns)); err != nil {
		return Choice{}, err
	}
	if p := oldestDefault(cps.Items, ch, platform, func(p *v1alpha1.ChannelProvider) (metav1.Object, *v1alpha1.ChannelProviderSpec) {
		return p, &p.Spec
	}); p != nil {
		return usable(KindChannelProvider, p, &p.Spec, p.Status.Conditions), nil
	}

	var ccps v1alpha1.ClusterChannelProviderList
	if err := c.List(ctx, &ccps); err != nil {
		return Choice{}, err
	}
	nsLabels, err := namespaceLabels(ctx, c, ns)
	if err != nil {
		return Choice{}, err
	}
	allowed := slices.DeleteFunc(ccps.Items, func(p v1alpha1.ClusterChannelProvider) bool {
		return !Allows(p.Spec.AllowedNamespaces, nsLabels)
	})
	if p := oldestDefault(allowed, ch, platform, func(p *v1alpha1.ClusterChannelProvider) (metav1.Object, *v1alpha1.ChannelProviderSpec) {
		return p, &p.Spec.ChannelProviderSpec
	}); p != nil {
		return usable(KindClusterChannelProvider, p, &p.Spec.ChannelProviderSpec, p.Status.Conditions), nil
	}
	return notReady(Choice{}, fmt.Sprintf("no provider for channel %s%s in namespace %q: no default ChannelProvider there and no default ClusterChannelProvider allows it", ch, onPlatform(platform), ns)), nil
}

// onPlatform is " (platform ios)", or "" for channels without platforms.
func onPlatform(p v1alpha1.Platform) string {
	if p == "" {
		return ""
	}
	return " (platform " + string(p) + ")"
}

func explicit(ctx context.Context, c client.Reader, ns string, ch v1alpha1.Channel, platform v1alpha1.Platform, ref *v1alpha1.ProviderReference) (Choice, error) {
	kind := ref.Kind
	if kind == "" {
		kind = KindChannelProvider
	}
	var (
		obj   client.Object
		spec  *v1alpha1.ChannelProviderSpec
		conds *[]metav1.Condition
		where string
		cp    v1alpha1.ChannelProvider
		ccp   v1alpha1.ClusterChannelProvider
	)
	switch kind {
	case KindChannelProvider:
		obj, spec, conds, where = &cp, &cp.Spec, &cp.Status.Conditions, fmt.Sprintf(" in namespace %q", ns)
		obj.SetNamespace(ns)
	case KindClusterChannelProvider:
		obj, spec, conds = &ccp, &ccp.Spec.ChannelProviderSpec, &ccp.Status.Conditions
	default:
		return notReady(Choice{Kind: kind, Name: ref.Name}, fmt.Sprintf("unknown provider kind %q", kind)), nil
	}
	err := c.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}, obj)
	if apierrors.IsNotFound(err) {
		return notReady(Choice{Kind: kind, Name: ref.Name, Key: Key(kind, obj.GetNamespace(), ref.Name)},
			fmt.Sprintf("%s %q not found%s", kind, ref.Name, where)), nil
	}
	if err != nil {
		return Choice{}, err
	}
	if kind == KindClusterChannelProvider {
		nsLabels, err := namespaceLabels(ctx, c, ns)
		if err != nil {
			return Choice{}, err
		}
		if !Allows(ccp.Spec.AllowedNamespaces, nsLabels) {
			return notReady(chosen(kind, obj, spec), fmt.Sprintf("%s %q does not allow namespace %q (allowedNamespaces)", kind, ref.Name, ns)), nil
		}
	}
	if got := spec.Channel(); got != ch {
		return notReady(chosen(kind, obj, spec), fmt.Sprintf("%s %q delivers on channel %q, not %s", kind, ref.Name, got, ch)), nil
	}
	if !spec.Serves(platform) {
		return notReady(chosen(kind, obj, spec), fmt.Sprintf("%s %q does not serve %s devices (it serves %v): name another for this platform in spec.providers.%s",
			kind, ref.Name, platform, spec.ServedPlatforms(), platform)), nil
	}
	return usable(kind, obj, spec, *conds), nil
}

// oldestDefault returns the oldest item that is a default for ch (serving
// platform) and not being deleted, or nil. Ties on creation time go to the
// smaller name, so every reader agrees.
func oldestDefault[T any](items []T, ch v1alpha1.Channel, platform v1alpha1.Platform, view func(*T) (metav1.Object, *v1alpha1.ChannelProviderSpec)) *T {
	var best *T
	var bestMeta metav1.Object
	for i := range items {
		m, spec := view(&items[i])
		if !spec.Default || spec.Channel() != ch || !spec.Serves(platform) || m.GetDeletionTimestamp() != nil {
			continue
		}
		if best == nil || Older(m, bestMeta) {
			best, bestMeta = &items[i], m
		}
	}
	return best
}

// Older reports whether a wins over b as the default for a channel: created
// earlier, or at the same second with the smaller name.
func Older(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetName() < b.GetName()
}

func chosen(kind string, obj metav1.Object, spec *v1alpha1.ChannelProviderSpec) Choice {
	return Choice{Key: Key(kind, obj.GetNamespace(), obj.GetName()), Kind: kind, Name: obj.GetName(), Spec: spec}
}

func usable(kind string, obj metav1.Object, spec *v1alpha1.ChannelProviderSpec, conds []metav1.Condition) Choice {
	c := chosen(kind, obj, spec)
	ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return notReady(c, fmt.Sprintf("%s %q has not been checked yet", kind, obj.GetName()))
	case ready.Status != metav1.ConditionTrue:
		return notReady(c, fmt.Sprintf("%s %q is not Ready (%s: %s)", kind, obj.GetName(), ready.Reason, ready.Message))
	}
	c.Ready = true
	return c
}

func notReady(c Choice, msg string) Choice {
	c.Ready, c.Reason, c.Message = false, v1alpha1.ReasonProviderNotReady, msg
	return c
}

// Allows reports whether a ClusterChannelProvider's allowedNamespaces
// selects a namespace with these labels. A nil or empty selector selects
// none: allowing every namespace must be said, for instance with
// matchExpressions [{key: kubernetes.io/metadata.name, operator: Exists}].
// A selector that does not parse selects none.
func Allows(sel *metav1.LabelSelector, nsLabels map[string]string) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(nsLabels))
}

// namespaceLabels returns ns's labels; a namespace that does not exist has
// none, so no ClusterChannelProvider allows it.
func namespaceLabels(ctx context.Context, c client.Reader, ns string) (map[string]string, error) {
	var n corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return n.Labels, nil
}

// Namespaces lists the namespaces whose routing a change to this provider
// may affect: a ChannelProvider's own namespace, or every namespace a
// ClusterChannelProvider's allowedNamespaces selects (for both the old and
// the new selector, pass each). The Notification reconciler uses it to
// revisit Notifications waiting for a provider.
func Namespaces(ctx context.Context, c client.Reader, obj client.Object) ([]string, error) {
	ccp, ok := obj.(*v1alpha1.ClusterChannelProvider)
	if !ok {
		return []string{obj.GetNamespace()}, nil
	}
	var list corev1.NamespaceList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range list.Items {
		if Allows(ccp.Spec.AllowedNamespaces, n.Labels) {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

// Chain is the primary choice followed by its fallback providers — the
// Notification's own list when it gives one (fallback not nil), else the
// primary provider's spec.fallback — each resolved as an explicit
// reference would be (so each is checked for channel, platform, namespace
// and readiness).
func Chain(ctx context.Context, c client.Reader, ns string, ch v1alpha1.Channel, platform v1alpha1.Platform, primary Choice, fallback []v1alpha1.ProviderReference) ([]Choice, error) {
	chain := []Choice{primary}
	if fallback == nil && primary.Spec != nil {
		fallback = primary.Spec.Fallback
	}
	for i := range fallback {
		next, err := explicit(ctx, c, ns, ch, platform, &fallback[i])
		if err != nil {
			return nil, err
		}
		chain = append(chain, next)
	}
	return chain, nil
}

// Ref is how a delivery records a provider: "Kind/name".
func (c Choice) Ref() string { return c.Kind + "/" + c.Name }

// Pick is the provider a delivery goes to: the first Ready one in chain
// that it has not tried (tried holds Ref values), else the first one not
// tried (not Ready: the delivery waits for it), else a Choice that says the
// whole chain failed.
func Pick(chain []Choice, tried []string) Choice {
	var waiting *Choice
	for i := range chain {
		if slices.Contains(tried, chain[i].Ref()) {
			continue
		}
		if chain[i].Ready {
			return chain[i]
		}
		if waiting == nil {
			waiting = &chain[i]
		}
	}
	if waiting != nil {
		return *waiting
	}
	return notReady(Choice{}, fmt.Sprintf("every provider for the delivery failed it: %v", tried))
}
