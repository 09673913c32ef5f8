package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/receipt"
	"github.com/herald-dev/herald/internal/unsubscribe"
)

// InboundConfig is what the inbound glue needs.
type InboundConfig struct {
	// Namespace holds the Secrets of ClusterChannelProviders.
	Namespace string
	Receipts  *Receipts
	// PublicURL is the inbound server's public URL, for Receivers' status.
	PublicURL string
	// Unsubscribe checks one-click unsubscribe links; nil serves none.
	Unsubscribe *unsubscribe.Signer
	Clock       clock.PassiveClock
}

// indexPhone finds the users with a phone number (STOP and START replies).
const indexPhone = "spec.phone"

// SetupInbound registers the receipt reconciler and the providers' hooks on srv.
func SetupInbound(mgr ctrl.Manager, srv *inbound.Server, cfg InboundConfig) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.UserPreference{}, indexPhone, func(o client.Object) []string {
		if p := o.(*v1alpha1.UserPreference).Spec.Phone; p != "" {
			return []string{p}
		}
		return nil
	}); err != nil {
		return err
	}
	rr := &ReceiptReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: mgr.GetEventRecorder("herald"), Receipts: cfg.Receipts, Clock: cfg.Clock}
	if err := rr.SetupWithManager(mgr); err != nil {
		return err
	}
	g := inboundGlue{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), namespace: cfg.Namespace, clock: cfg.Clock, secrets: &secretCache{}}
	p := &inbound.Providers{Lookup: g.provider, Receipts: cfg.Receipts.Add, Keyword: g.keyword, Clock: cfg.Clock}
	activity := newReceiverActivity(time.Second, cfg.Clock)
	rcv := &inbound.Receivers{Lookup: g.receiver, Create: g.createNotification, Record: activity.record}
	sw := statusWriter{Client: mgr.GetClient(), Events: mgr.GetEventRecorder("herald")}
	if err := (&ReceiverReconciler{statusWriter: sw, Secrets: mgr.GetAPIReader(), PublicURL: cfg.PublicURL, Activity: activity, Clock: cfg.Clock}).SetupWithManager(mgr); err != nil {
		return err
	}
	unsub := unsubscribeRoutes(cfg.Unsubscribe, learner{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}, cfg.Clock.Now)
	for _, r := range slices.Concat(p.Routes(), rcv.Routes(), unsub) {
		srv.Add(r)
	}
	return nil
}

// inboundGlue answers the inbound handlers' questions about the cluster.
type inboundGlue struct {
	client.Client
	// APIReader reads Secrets (not cached: see providerReconciler.secrets).
	APIReader client.Reader
	namespace string
	clock     clock.PassiveClock
	secrets   *secretCache
}

// secretCacheTTL is how long a provider's or Receiver's Secret is reused
// for verifying requests: a Twilio callback per message must not cost an
// API call each. A rotated Secret is used at most this much later.
const secretCacheTTL = 10 * time.Second

// secretCache keeps Secrets' data read for inbound requests, briefly.
type secretCache struct {
	mu      sync.Mutex
	entries map[client.ObjectKey]cachedSecret
}

type cachedSecret struct {
	data    map[string][]byte
	expires time.Time
}

// secret returns a Secret's data, from the cache while it is fresh.
func (g inboundGlue) secret(ctx context.Context, key client.ObjectKey) (map[string][]byte, error) {
	now := g.clock.Now()
	g.secrets.mu.Lock()
	e, ok := g.secrets.entries[key]
	g.secrets.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.data, nil
	}
	var s corev1.Secret
	if err := g.APIReader.Get(ctx, key, &s); err != nil {
		return nil, unauthorizedIfMissing(err)
	}
	g.secrets.mu.Lock()
	defer g.secrets.mu.Unlock()
	if g.secrets.entries == nil || len(g.secrets.entries) > 1000 {
		g.secrets.entries = map[client.ObjectKey]cachedSecret{}
	}
	g.secrets.entries[key] = cachedSecret{data: s.Data, expires: now.Add(secretCacheTTL)}
	return s.Data, nil
}

// provider returns a provider's type and Secret data; namespace "" is a
// ClusterChannelProvider. Anything missing is ErrUnauthorized, so a caller
// learns nothing about which providers exist.
func (g inboundGlue) provider(ctx context.Context, namespace, name string) (inbound.ProviderInfo, error) {
	var spec *v1alpha1.ChannelProviderSpec
	secretNS := namespace
	if namespace == "" {
		var p v1alpha1.ClusterChannelProvider
		if err := g.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			return inbound.ProviderInfo{}, unauthorizedIfMissing(err)
		}
		spec, secretNS = &p.Spec.ChannelProviderSpec, g.namespace
	} else {
		var p v1alpha1.ChannelProvider
		if err := g.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
			return inbound.ProviderInfo{}, unauthorizedIfMissing(err)
		}
		spec = &p.Spec
	}
	if spec.SecretRef == nil || spec.Receipts == nil {
		// Receipts are off for this provider: nothing it sends is taken.
		return inbound.ProviderInfo{}, inbound.ErrUnauthorized
	}
	data, err := g.secret(ctx, client.ObjectKey{Namespace: secretNS, Name: spec.SecretRef.Name})
	if err != nil {
		return inbound.ProviderInfo{}, err
	}
	return inbound.ProviderInfo{Type: spec.Type, Secret: data, PublicURL: spec.Receipts.PublicURL}, nil
}

func unauthorizedIfMissing(err error) error {
	if apierrors.IsNotFound(err) || errors.Is(err, inbound.ErrUnauthorized) {
		return inbound.ErrUnauthorized
	}
	return err
}

// keyword records a STOP (or START) from phone on every user with that
// number in namespace (every namespace when "": a ClusterChannelProvider's
// number serves them all).
func (g inboundGlue) keyword(ctx context.Context, namespace, phone string, k receipt.Keyword) error {
	var list v1alpha1.UserPreferenceList
	opts := []client.ListOption{client.MatchingFields{indexPhone: phone}}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := g.List(ctx, &list, opts...); err != nil {
		return err
	}
	l := learner{Client: g.Client, APIReader: g.APIReader}
	now := g.clock.Now()
	for _, u := range list.Items {
		var err error
		if k == receipt.OptOut {
			err = l.record(ctx, u.Namespace, learnedAddress{user: u.Name, channel: v1alpha1.ChannelSMS, raw: phone, reason: v1alpha1.ReasonUnsubscribed}, now)
		} else {
			err = l.forget(ctx, u.Namespace, u.Name, v1alpha1.ChannelSMS, phone)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// providerHooks are the inbound URLs of a provider with spec.receipts:
// what status.hooks shows and where Twilio's StatusCallback points.
func providerHooks(publicURL string, cluster bool, p client.Object, spec *v1alpha1.ChannelProviderSpec) []v1alpha1.ProviderHook {
	if spec.Receipts == nil {
		return nil
	}
	if spec.Receipts.PublicURL != "" {
		publicURL = spec.Receipts.PublicURL
	}
	if publicURL == "" {
		return nil
	}
	ns := p.GetNamespace()
	if cluster {
		ns = ""
	}
	var names []string
	switch spec.Type {
	case v1alpha1.ProviderTwilio:
		names = []string{inbound.HookStatus, inbound.HookMessages}
	case v1alpha1.ProviderSendGrid:
		names = []string{inbound.HookEvents}
	}
	hooks := make([]v1alpha1.ProviderHook, len(names))
	for i, h := range names {
		hooks[i] = v1alpha1.ProviderHook{Name: h, URL: inbound.JoinURL(publicURL, inbound.ProviderPath(ns, p.GetName(), h))}
	}
	return hooks
}

// hookURL is the URL of the named hook, "" when there is none.
func hookURL(hooks []v1alpha1.ProviderHook, name string) string {
	for _, h := range hooks {
		if h.Name == name {
			return h.URL
		}
	}
	return ""
}
