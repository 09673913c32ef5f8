package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/route"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/registry"
)

// +kubebuilder:rbac:groups=notify.herald.dev,resources=channelproviders;clusterchannelproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=notify.herald.dev,resources=channelproviders/status;clusterchannelproviders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// secretNameIndex indexes providers by the names of the Secrets they read
// (spec.secretRef and spec.tls.caSecretRef), so a Secret event finds them.
const secretNameIndex = "spec.secretNames"

// providerControllers registers one reconciler per provider kind.
type providerControllers struct {
	statusWriter
	Config
}

// SetupWithManager registers the ChannelProvider and ClusterChannelProvider reconcilers.
func (p providerControllers) SetupWithManager(mgr ctrl.Manager) error {
	for _, k := range []providerKind{channelProviderKind, clusterChannelProviderKind} {
		r := &providerReconciler{statusWriter: p.statusWriter, secrets: mgr.GetAPIReader(), cfg: p.Config, kind: k,
			log: mgr.GetLogger().WithName("senders"), built: map[string]fingerprint{}}
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}

// providerKind adapts ChannelProvider or ClusterChannelProvider to the one
// reconciler: they differ only in scope and in where their Secret lives.
type providerKind struct {
	name    string
	cluster bool
	newObj  func() client.Object
	newList func() client.ObjectList
	spec    func(client.Object) *v1alpha1.ChannelProviderSpec
	status  func(client.Object) *v1alpha1.ProviderStatus
	items   func(client.ObjectList) []client.Object
}

var channelProviderKind = providerKind{
	name:    route.KindChannelProvider,
	newObj:  func() client.Object { return &v1alpha1.ChannelProvider{} },
	newList: func() client.ObjectList { return &v1alpha1.ChannelProviderList{} },
	spec:    func(o client.Object) *v1alpha1.ChannelProviderSpec { return &o.(*v1alpha1.ChannelProvider).Spec },
	status:  func(o client.Object) *v1alpha1.ProviderStatus { return &o.(*v1alpha1.ChannelProvider).Status },
	items: func(l client.ObjectList) []client.Object {
		items := l.(*v1alpha1.ChannelProviderList).Items
		out := make([]client.Object, len(items))
		for i := range items {
			out[i] = &items[i]
		}
		return out
	},
}

var clusterChannelProviderKind = providerKind{
	name:    route.KindClusterChannelProvider,
	cluster: true,
	newObj:  func() client.Object { return &v1alpha1.ClusterChannelProvider{} },
	newList: func() client.ObjectList { return &v1alpha1.ClusterChannelProviderList{} },
	spec: func(o client.Object) *v1alpha1.ChannelProviderSpec {
		return &o.(*v1alpha1.ClusterChannelProvider).Spec.ChannelProviderSpec
	},
	status: func(o client.Object) *v1alpha1.ProviderStatus { return &o.(*v1alpha1.ClusterChannelProvider).Status },
	items: func(l client.ObjectList) []client.Object {
		items := l.(*v1alpha1.ClusterChannelProviderList).Items
		out := make([]client.Object, len(items))
		for i := range items {
			out[i] = &items[i]
		}
		return out
	},
}

// providerReconciler checks a provider's Secret and spec, reports Ready, and
// keeps the provider's dispatch queue in step: a sender while Ready, no
// queue otherwise.
type providerReconciler struct {
	statusWriter
	// secrets reads Secrets straight from the API server, on demand: the
	// cache would hold every Secret's data in the cluster in memory. Only
	// Secret metadata is watched, to learn about rotations.
	secrets client.Reader
	cfg     Config
	kind    providerKind
	// log is given to senders, which outlive the reconcile that built them.
	log logr.Logger

	mu sync.Mutex
	// built is what each queue's sender was built from, so a reconcile that
	// changes nothing keeps the sender and its connections.
	built map[string]fingerprint
}

// fingerprint changes whenever the inputs of a sender do.
type fingerprint struct {
	generation     int64
	secretRV, caRV string
}

// Reconcile sets Ready from the provider's Secret and spec and ensures or
// removes its dispatch queue.
func (r *providerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := route.Key(r.kind.name, req.Namespace, req.Name)
	obj := r.kind.newObj()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(key)
			forgetProviderReady(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if obj.GetDeletionTimestamp() != nil {
		r.forget(key)
		forgetProviderReady(key)
		return ctrl.Result{}, nil
	}
	before := obj.DeepCopyObject().(client.Object)
	o, err := r.check(ctx, key, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !o.Ready {
		r.forget(key)
	}
	st, bst := r.kind.status(obj), r.kind.status(before)
	st.ObservedGeneration = obj.GetGeneration()
	st.Hooks = providerHooks(r.cfg.InboundPublicURL, r.kind.cluster, obj, r.kind.spec(obj))
	if o.Ready && r.kind.spec(obj).Receipts != nil && len(st.Hooks) == 0 {
		o.Message += "; spec.receipts is set, but without spec.receipts.publicURL or the manager's --inbound-public-url no receipts are asked for"
	}
	setConditions(&st.Conditions, obj.GetGeneration(), o)
	circuit, lastErr := dispatch.CircuitClosed, ""
	if r.cfg.Dispatcher != nil {
		circuit, lastErr = r.cfg.Dispatcher.Circuit(key)
	}
	available(&st.Conditions, obj.GetGeneration(), o.Ready, circuit, lastErr)
	if err := r.write(ctx, obj, before, *bst, *st, bst.Conditions, st.Conditions); err != nil {
		return ctrl.Result{}, err
	}
	setProviderReady(key, r.kind.spec(obj).Type, o.Ready)
	return ctrl.Result{}, nil
}

// check decides the provider's Outcome; when Ready, its sender is in the
// dispatcher. Only API errors are returned.
func (r *providerReconciler) check(ctx context.Context, key string, obj client.Object) (Outcome, error) {
	spec := r.kind.spec(obj)
	winner, err := r.defaultWinner(ctx, obj)
	if err != nil {
		return Outcome{}, err
	}
	if winner != "" {
		return Outcome{Stalled: true, Reason: v1alpha1.ReasonDuplicateDefault, Message: fmt.Sprintf(
			"%s %q is already the default for channel %s%s (the oldest default wins); unset default on one of them",
			r.kind.name, winner, spec.Channel(), platformsOf(spec))}, nil
	}

	pc := senders.ProviderConfig{
		Name:      r.kind.name + "/" + obj.GetName(),
		Spec:      spec,
		Log:       r.log,
		OutboxDir: r.cfg.OutboxDir,
		Egress:    r.cfg.Egress,

		AllowInsecureTLS: r.cfg.AllowInsecureTLS,
		ReceiptURL:       hookURL(providerHooks(r.cfg.InboundPublicURL, r.kind.cluster, obj, spec), inbound.HookStatus),
	}
	fp := fingerprint{generation: obj.GetGeneration()}
	ns := r.secretNamespace(obj)
	var secretName, caName, caKey string
	if ref := spec.SecretRef; ref != nil {
		secretName = ref.Name
		s, o, err := r.readSecret(ctx, ns, ref.Name)
		if s == nil {
			return o, err
		}
		pc.Secret, fp.secretRV = s.Data, s.ResourceVersion
	}
	if spec.TLS != nil && spec.TLS.CASecretRef != nil {
		caName, caKey = spec.TLS.CASecretRef.Name, spec.TLS.CASecretRef.Key
		if caKey == "" {
			caKey = "ca.crt"
		}
		s, o, err := r.readSecret(ctx, ns, caName)
		if s == nil {
			return o, err
		}
		if len(s.Data[caKey]) == 0 {
			return Outcome{Stalled: true, Reason: v1alpha1.ReasonSecretKeyMissing,
				Message: fmt.Sprintf("Secret %q: %s (spec.tls.caSecretRef)", ns+"/"+caName, senders.MissingKey(caKey))}, nil
		}
		pc.CA, fp.caRV = s.Data[caKey], s.ResourceVersion
	}

	if err := registry.Validate(pc); err != nil {
		return configOutcome(err, ns, secretName, caName, caKey, pc), nil
	}
	if err := r.ensure(key, fp, pc); err != nil {
		return configOutcome(err, ns, secretName, caName, caKey, pc), nil
	}
	msg := fmt.Sprintf("%s provider for channel %s is configured", spec.Type, spec.Channel())
	// The resourceVersion shows which version of a rotated Secret is in use.
	if secretName != "" {
		msg += fmt.Sprintf(" from Secret %q at resourceVersion %s", ns+"/"+secretName, fp.secretRV)
	}
	if caName != "" {
		msg += fmt.Sprintf(", CA from Secret %q at resourceVersion %s", ns+"/"+caName, fp.caRV)
	}
	return Outcome{Ready: true, Reason: v1alpha1.ReasonSucceeded, Message: msg}, nil
}

// secretNamespace is where the provider's Secrets live: its own namespace,
// or the manager's for a ClusterChannelProvider.
func (r *providerReconciler) secretNamespace(obj client.Object) string {
	if r.kind.cluster {
		return r.cfg.Namespace
	}
	return obj.GetNamespace()
}

// readSecret returns the Secret, or the Outcome for a missing one (with a
// nil Secret), or an API error.
func (r *providerReconciler) readSecret(ctx context.Context, ns, name string) (*corev1.Secret, Outcome, error) {
	var s corev1.Secret
	err := r.secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		msg := fmt.Sprintf("Secret %q not found", ns+"/"+name)
		if r.kind.cluster {
			msg += " (a ClusterChannelProvider's Secrets live in the manager's namespace)"
		}
		// Creating the Secret fixes this without touching the provider, and
		// the Secret watch brings us back then: Reconciling, not Stalled.
		return nil, Outcome{Reason: v1alpha1.ReasonSecretNotFound, Message: msg}, nil
	}
	if err != nil {
		return nil, Outcome{}, err
	}
	return &s, Outcome{}, nil
}

// configOutcome turns a registry error into a Stalled Outcome whose message
// names the Secret and key at fault but never a value.
func configOutcome(err error, ns, secretName, caName, caKey string, pc senders.ProviderConfig) Outcome {
	o := Outcome{Stalled: true, Reason: v1alpha1.ReasonInvalidSpec, Message: err.Error()}
	var ce *senders.ConfigError
	if errors.As(err, &ce) {
		o.Reason = ce.Reason
		switch {
		case ce.Field == "tls.caSecretRef":
			o.Message = fmt.Sprintf("Secret %q key %q (spec.tls.caSecretRef): %s", ns+"/"+caName, caKey, ce.Message)
		case ce.Reason == v1alpha1.ReasonSecretKeyMissing || ce.Reason == v1alpha1.ReasonInvalidSecret:
			o.Message = fmt.Sprintf("Secret %q: %s", ns+"/"+secretName, ce.Error())
		}
	}
	o.Message = truncate(redact(o.Message, pc.Secret), 1024)
	return o
}

// redact is a backstop behind the adapters' promise never to quote a
// Secret value: any value (or long line of one) found in msg is masked.
// The CA is public and left alone.
func redact(msg string, data map[string][]byte) string {
	mask := func(v string) {
		if len(v) >= 6 && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	for _, v := range data {
		mask(string(v))
		for _, line := range strings.Split(string(v), "\n") {
			if len(line) >= 16 {
				mask(strings.TrimSpace(line))
			}
		}
	}
	return msg
}

// platformsOf is " (platforms [ios])" for a push provider, else "".
func platformsOf(spec *v1alpha1.ChannelProviderSpec) string {
	if p := spec.ServedPlatforms(); p != nil {
		return fmt.Sprintf(" (platforms %v)", p)
	}
	return ""
}

// defaultWinner returns the name of an older default provider for the same
// channel (for push, a platform in common) among this one's peers (same namespace, or all
// ClusterChannelProviders), or "" when this one is not a default or wins.
func (r *providerReconciler) defaultWinner(ctx context.Context, obj client.Object) (string, error) {
	spec := r.kind.spec(obj)
	if !spec.Default {
		return "", nil
	}
	list := r.kind.newList()
	var opts []client.ListOption
	if !r.kind.cluster {
		opts = append(opts, client.InNamespace(obj.GetNamespace()))
	}
	if err := r.List(ctx, list, opts...); err != nil {
		return "", err
	}
	var winner client.Object
	for _, p := range r.kind.items(list) {
		ps := r.kind.spec(p)
		if p.GetUID() == obj.GetUID() || !ps.Default || !ps.SharesDefault(spec) || p.GetDeletionTimestamp() != nil {
			continue
		}
		if route.Older(p, obj) && (winner == nil || route.Older(p, winner)) {
			winner = p
		}
	}
	if winner == nil {
		return "", nil
	}
	return winner.GetName(), nil
}

// ensure gives key's queue a sender built from pc, unless one built from the
// same inputs is already there.
func (r *providerReconciler) ensure(key string, fp fingerprint, pc senders.ProviderConfig) error {
	if r.cfg.Dispatcher == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, had := r.built[key]; had && old == fp {
		return nil
	}
	s, err := registry.New(pc)
	if err != nil {
		return err
	}
	// The dispatcher closes the old sender once its last send returns.
	r.cfg.Dispatcher.Ensure(key, dispatch.SettingsFrom(pc.Spec), s)
	r.built[key] = fp
	return nil
}

// forget removes key's queue.
func (r *providerReconciler) forget(key string) {
	if r.cfg.Dispatcher == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The dispatcher closes the sender once the cancelled sends unwind.
	r.cfg.Dispatcher.Remove(key)
	delete(r.built, key)
}

// SetupWithManager registers the reconciler, the Secret name index, a
// metadata-only Secret watch, and a watch that revisits a namespace's
// defaults when one of them changes (the oldest default wins).
func (r *providerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), r.kind.newObj(), secretNameIndex, func(o client.Object) []string {
		spec := r.kind.spec(o)
		var names []string
		if spec.SecretRef != nil {
			names = append(names, spec.SecretRef.Name)
		}
		if spec.TLS != nil && spec.TLS.CASecretRef != nil && (len(names) == 0 || names[0] != spec.TLS.CASecretRef.Name) {
			names = append(names, spec.TLS.CASecretRef.Name)
		}
		return names
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(r.kind.newObj(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(r.kind.newObj(), handler.EnqueueRequestsFromMapFunc(r.peerDefaults), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.providersForSecret))
	if c := r.cfg.Circuits; c != nil {
		b = b.WatchesRawSource(source.Channel(c.byKind[r.kind.name], &handler.EnqueueRequestForObject{}))
	}
	return b.Named(strings.ToLower(r.kind.name)).Complete(r)
}

// providersForSecret maps a Secret to the providers that read it.
func (r *providerReconciler) providersForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	opts := []client.ListOption{client.MatchingFields{secretNameIndex: secret.GetName()}}
	if r.kind.cluster {
		if secret.GetNamespace() != r.cfg.Namespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(secret.GetNamespace()))
	}
	return r.requests(ctx, nil, opts...)
}

// peerDefaults maps a provider change to the default providers it may
// contest: the other defaults in its namespace, or every other default
// ClusterChannelProvider. The changed provider's own channel is not
// checked: its old channel may have been another.
func (r *providerReconciler) peerDefaults(ctx context.Context, obj client.Object) []reconcile.Request {
	var opts []client.ListOption
	if !r.kind.cluster {
		opts = append(opts, client.InNamespace(obj.GetNamespace()))
	}
	return r.requests(ctx, func(p client.Object) bool {
		return p.GetUID() != obj.GetUID() && r.kind.spec(p).Default
	}, opts...)
}

func (r *providerReconciler) requests(ctx context.Context, keep func(client.Object) bool, opts ...client.ListOption) []reconcile.Request {
	list := r.kind.newList()
	if err := r.List(ctx, list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing providers", "kind", r.kind.name)
		return nil
	}
	var out []reconcile.Request
	for _, p := range r.kind.items(list) {
		if keep == nil || keep(p) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return out
}
