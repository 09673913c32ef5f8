// Command manager is Herald's operator: it watches Notifications, Templates,
// UserPreferences and providers, and delivers notifications.
package main

import (
	"bytes"
	"flag"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/herald-dev/herald/internal/manager"
)

func main() {
	o := manager.DefaultOptions()
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.Namespace = ns
	}
	var qps float64
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address the metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&o.LeaderElection, "leader-elect", false, "Elect a leader so only one replica is active.")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader Lease (default: the in-cluster namespace).")
	flag.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a crashed leader's Lease keeps the other replicas waiting.")
	flag.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leading.")
	flag.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	flag.DurationVar(&o.DrainTimeout, "shutdown-drain-timeout", o.DrainTimeout, "On SIGTERM, how long sends in flight may take to finish and be recorded before the manager stops; keep it below the pod's terminationGracePeriodSeconds.")
	flag.StringVar(&o.Namespace, "namespace", o.Namespace, "Namespace the manager runs in; ClusterChannelProvider Secrets are read from it (default $POD_NAMESPACE).")
	flag.DurationVar(&o.DefaultTTLAfterFinished, "default-ttl-after-finished", o.DefaultTTLAfterFinished, "Delete finished Notifications this long after completion unless they set spec.ttlSecondsAfterFinished; 0 keeps them.")
	flag.DurationVar(&o.DedupWindow, "dedup-window", o.DedupWindow, "How long an idempotencyKey suppresses later Notifications with the same key.")
	flag.StringVar(&o.EgressAllowCIDRs, "egress-allow-cidrs", o.EgressAllowCIDRs, "Comma-separated CIDRs senders may connect to besides public addresses; loopback, private, shared, link-local, multicast and unspecified ranges are refused otherwise (e.g. 10.0.5.0/24 for an in-cluster SMTP relay).")
	flag.BoolVar(&o.AllowInsecureSkipVerify, "allow-insecure-skip-verify", o.AllowInsecureSkipVerify, "Let providers set tls.insecureSkipVerify; otherwise such a provider is Stalled with InvalidSpec.")
	flag.StringVar(&o.OutboxDir, "outbox-dir", o.OutboxDir, "Directory where log-type providers append outbox.jsonl; empty logs only.")
	flag.IntVar(&o.MaxDeliveriesPerObject, "max-deliveries-per-object", o.MaxDeliveriesPerObject, "Deliveries one Notification records; larger fan-outs are split into child Notifications.")
	flag.IntVar(&o.NotificationWorkers, "notification-workers", o.NotificationWorkers, "Notifications reconciled at once.")
	flag.DurationVar(&o.StatusFlushDelay, "status-flush-delay", o.StatusFlushDelay, "How long outcomes wait to share one status write.")
	flag.IntVar(&o.MaxUnrecordedSends, "max-unrecorded-sends", o.MaxUnrecordedSends, "Per provider, messages sent but not yet recorded in status before sending waits: what a crash can send twice. Negative: no bound.")
	flag.DurationVar(&o.MaxPending, "max-pending", o.MaxPending, "How long a Notification may wait for a missing Template or params, a selector that does not parse, or a provider that is not Ready, before it fails with that reason (its expiresAfter ends the wait sooner); 0 leaves only expiresAfter.")
	flag.BoolVar(&o.NormalEvents, "normal-events", o.NormalEvents, "Record a Normal Event for every Notification that finishes well; by default only those to several recipients get one (Warnings always).")
	o.InboundAddr = ":9443"
	flag.StringVar(&o.InboundAddr, "inbound-addr", o.InboundAddr, "Address the inbound server (provider receipts, STOP replies, Receivers, unsubscribe links) listens on; 0 disables it. Every replica serves it.")
	flag.StringVar(&o.InboundCertDir, "inbound-cert-dir", o.InboundCertDir, "Directory with tls.crt and tls.key for the inbound server (a mounted Secret, reloaded on change); empty serves plain HTTP for an Ingress that terminates TLS.")
	flag.StringVar(&o.InboundPublicURL, "inbound-public-url", o.InboundPublicURL, "URL at which providers and people reach the inbound server, e.g. https://herald.example.com; without it Herald asks for no receipts and adds no unsubscribe links.")
	flag.Int64Var(&o.InboundMaxBodyBytes, "inbound-max-body-bytes", 1<<20, "Largest inbound request body accepted.")
	flag.Float64Var(&o.InboundRatePerSecond, "inbound-rate", 50, "Inbound requests per second allowed per source (a provider, a Receiver).")
	flag.IntVar(&o.InboundBurst, "inbound-burst", 100, "Inbound request burst allowed per source.")
	var unsubKeyFile string
	flag.StringVar(&unsubKeyFile, "unsubscribe-key-file", "", "File with the key (at least 32 bytes, the same for every replica; a mounted Secret) that signs one-click unsubscribe links; with --inbound-public-url, emails of a non-critical category carry List-Unsubscribe.")
	flag.DurationVar(&o.UnsubscribeLinkTTL, "unsubscribe-link-ttl", 60*24*time.Hour, "How long a one-click unsubscribe link works.")
	flag.Float64Var(&qps, "kube-api-qps", float64(o.QPS), "Queries per second to the API server.")
	flag.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Burst of queries to the API server.")
	zo := zap.Options{}
	zo.BindFlags(flag.CommandLine)
	flag.Parse()
	o.QPS = float32(qps)

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	log := ctrl.Log.WithName("setup")
	if unsubKeyFile != "" {
		key, err := os.ReadFile(unsubKeyFile)
		if err != nil {
			log.Error(err, "reading --unsubscribe-key-file")
			os.Exit(1)
		}
		o.UnsubscribeKey = bytes.TrimSpace(key)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no kubeconfig or in-cluster config")
		os.Exit(1)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		log.Error(err, "setting up the manager")
		os.Exit(1)
	}
	log.Info("starting manager", "namespace", o.Namespace, "leaderElection", o.LeaderElection)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}
