package manager

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/herald-dev/herald/internal/controller"
	"github.com/herald-dev/herald/internal/inbound"
	"github.com/herald-dev/herald/internal/unsubscribe"
)

func inboundEnabled(o Options) bool { return o.InboundAddr != "" && o.InboundAddr != "0" }

// publicURL is the inbound server's public URL, "" when it is disabled.
func publicURL(o Options) string {
	if !inboundEnabled(o) {
		return ""
	}
	return o.InboundPublicURL
}

// unsubscribeSigner signs one-click unsubscribe links when the manager has
// a key and a public URL; nil otherwise (emails then carry no link).
func unsubscribeSigner(o Options) (*unsubscribe.Signer, error) {
	if len(o.UnsubscribeKey) == 0 || publicURL(o) == "" {
		return nil, nil
	}
	s, err := unsubscribe.New(o.UnsubscribeKey, o.InboundPublicURL, o.UnsubscribeLinkTTL)
	if err != nil {
		return nil, fmt.Errorf("--unsubscribe-key-file: %w", err)
	}
	return s, nil
}

// setupInbound adds the inbound server, when enabled, with every source's
// routes; it runs on every replica.
func setupInbound(mgr ctrl.Manager, o Options, unsub *unsubscribe.Signer) (*inbound.Server, *controller.Receipts, error) {
	if !inboundEnabled(o) {
		return nil, nil, nil
	}
	srv := inbound.New(inbound.Options{Addr: o.InboundAddr, CertDir: o.InboundCertDir, PublicURL: o.InboundPublicURL,
		MaxBodyBytes: o.InboundMaxBodyBytes, RatePerSecond: o.InboundRatePerSecond, Burst: o.InboundBurst})
	receipts := controller.NewReceipts(o.StatusFlushDelay, o.Clock)
	if err := controller.SetupInbound(mgr, srv, controller.InboundConfig{Namespace: o.Namespace, Receipts: receipts, PublicURL: o.InboundPublicURL, Unsubscribe: unsub, Clock: o.Clock}); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(srv); err != nil {
		return nil, nil, err
	}
	return srv, receipts, nil
}
