package manager

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/herald-dev/herald/internal/controller"
	"github.com/herald-dev/herald/internal/inbound"
)

func inboundEnabled(o Options) bool { return o.InboundAddr != "" && o.InboundAddr != "0" }

// publicURL is the inbound server's public URL, "" when it is disabled.
func publicURL(o Options) string {
	if !inboundEnabled(o) {
		return ""
	}
	return o.InboundPublicURL
}

// setupInbound adds the inbound server, when enabled, with every source's
// routes; it runs on every replica.
func setupInbound(mgr ctrl.Manager, o Options) (*inbound.Server, *controller.Receipts, error) {
	if !inboundEnabled(o) {
		return nil, nil, nil
	}
	srv := inbound.New(inbound.Options{Addr: o.InboundAddr, CertDir: o.InboundCertDir, PublicURL: o.InboundPublicURL,
		MaxBodyBytes: o.InboundMaxBodyBytes, RatePerSecond: o.InboundRatePerSecond, Burst: o.InboundBurst})
	receipts := controller.NewReceipts(o.StatusFlushDelay, o.Clock)
	if err := controller.SetupInbound(mgr, srv, controller.InboundConfig{Namespace: o.Namespace, Receipts: receipts, PublicURL: o.InboundPublicURL, Clock: o.Clock}); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(srv); err != nil {
		return nil, nil, err
	}
	return srv, receipts, nil
}
