package manager

import (
	"flag"
	"strconv"
	"time"
)

// BindFlags binds every manager option to a flag on fs, with o's values as
// defaults. cmd/ parses them; the install manifests' tests read the same
// set, so a flag the Helm chart cannot set fails a test. It returns the
// --unsubscribe-key-file value, which cmd/ reads into o.UnsubscribeKey.
func BindFlags(fs *flag.FlagSet, o *Options) (unsubscribeKeyFile *string) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address the metrics endpoint binds to; 0 disables it.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", o.PprofAddr, "Address net/http/pprof binds to, for profiling (e.g. 127.0.0.1:6060); empty disables it.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.LeaderElection, "leader-elect", o.LeaderElection, "Elect a leader so only one replica is active.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "Namespace of the leader Lease (default: the in-cluster namespace).")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a crashed leader's Lease keeps the other replicas waiting.")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leading.")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	fs.DurationVar(&o.DrainTimeout, "shutdown-drain-timeout", o.DrainTimeout, "On SIGTERM, how long sends in flight may take to finish and be recorded before the manager stops; keep it below the pod's terminationGracePeriodSeconds.")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "Namespace the manager runs in; ClusterChannelProvider Secrets are read from it (default $POD_NAMESPACE).")
	fs.DurationVar(&o.DefaultTTLAfterFinished, "default-ttl-after-finished", o.DefaultTTLAfterFinished, "Delete finished Notifications this long after completion unless they set spec.ttlSecondsAfterFinished; 0 keeps them.")
	fs.DurationVar(&o.DedupWindow, "dedup-window", o.DedupWindow, "How long an idempotencyKey suppresses later Notifications with the same key.")
	fs.StringVar(&o.EgressAllowCIDRs, "egress-allow-cidrs", o.EgressAllowCIDRs, "Comma-separated CIDRs senders may connect to besides public addresses; loopback, private, shared, link-local, multicast and unspecified ranges are refused otherwise (e.g. 10.0.5.0/24 for an in-cluster SMTP relay).")
	fs.BoolVar(&o.AllowInsecureSkipVerify, "allow-insecure-skip-verify", o.AllowInsecureSkipVerify, "Let providers set tls.insecureSkipVerify; otherwise such a provider is Stalled with InvalidSpec.")
	fs.StringVar(&o.OutboxDir, "outbox-dir", o.OutboxDir, "Directory where log-type providers append outbox.jsonl; empty logs only.")
	fs.IntVar(&o.MaxDeliveriesPerObject, "max-deliveries-per-object", o.MaxDeliveriesPerObject, "Deliveries one Notification records; larger fan-outs are split into child Notifications of that many deliveries (more when that would make over 1,000 children). 0: 350 with --journal-dir, 32 without.")
	fs.IntVar(&o.NotificationWorkers, "notification-workers", o.NotificationWorkers, "Notifications reconciled at once.")
	fs.DurationVar(&o.StatusFlushDelay, "status-flush-delay", o.StatusFlushDelay, "How long outcomes wait to share one status write.")
	fs.DurationVar(&o.StatusHold, "status-hold", o.StatusHold, "With --journal-dir, how long a Notification's outcomes may wait for its other running sends, so that they share one status write; 0: no wait beyond --status-flush-delay.")
	fs.IntVar(&o.MaxUnrecordedSends, "max-unrecorded-sends", o.MaxUnrecordedSends, "Per provider, messages sent but not yet recorded (in status, or fsynced in the journal) before sending waits: what a crash can send twice. Negative: no bound.")
	fs.StringVar(&o.JournalDir, "journal-dir", o.JournalDir, "Directory (one per replica, e.g. an emptyDir) where sends providers accepted are journaled until status records them; a restarted manager replays it, so a process crash re-sends only what was in flight. Empty: no journal, a crash re-sends up to --max-unrecorded-sends per provider.")
	fs.DurationVar(&o.MaxPending, "max-pending", o.MaxPending, "How long a Notification may wait for a missing Template or params, a selector that does not parse, or a provider that is not Ready, before it fails with that reason (its expiresAfter ends the wait sooner); 0 leaves only expiresAfter.")
	fs.BoolVar(&o.NormalEvents, "normal-events", o.NormalEvents, "Record a Normal Event for every Notification that finishes well; by default only those to several recipients get one (Warnings always).")
	fs.IntVar(&o.MetricsNamespaceLabelLimit, "metrics-namespace-label-limit", o.MetricsNamespaceLabelLimit, "Namespaces that get their own namespace label on herald_deliveries_total (the first seen); later ones are counted as \"other\".")
	fs.BoolVar(&o.AuditLog, "audit-log", o.AuditLog, "Log one JSON record per finished delivery on the \"audit\" logger (masked address, channel, provider, state, reason, attempts, times).")
	fs.StringVar(&o.InboundAddr, "inbound-addr", o.InboundAddr, "Address the inbound server (provider receipts, STOP replies, Receivers, unsubscribe links) listens on; 0 disables it. Every replica serves it.")
	fs.StringVar(&o.InboundCertDir, "inbound-cert-dir", o.InboundCertDir, "Directory with tls.crt and tls.key for the inbound server (a mounted Secret, reloaded on change); empty serves plain HTTP for an Ingress that terminates TLS.")
	fs.StringVar(&o.InboundPublicURL, "inbound-public-url", o.InboundPublicURL, "URL at which providers and people reach the inbound server, e.g. https://herald.example.com; without it Herald asks for no receipts and adds no unsubscribe links.")
	fs.Int64Var(&o.InboundMaxBodyBytes, "inbound-max-body-bytes", 1<<20, "Largest inbound request body accepted.")
	fs.Float64Var(&o.InboundRatePerSecond, "inbound-rate", 50, "Inbound requests per second allowed per source (a provider, a Receiver).")
	fs.IntVar(&o.InboundBurst, "inbound-burst", 100, "Inbound request burst allowed per source.")
	unsubscribeKeyFile = fs.String("unsubscribe-key-file", "", "File with the key (at least 32 bytes, the same for every replica; a mounted Secret) that signs one-click unsubscribe links; with --inbound-public-url, emails of a non-critical category carry List-Unsubscribe.")
	fs.DurationVar(&o.UnsubscribeLinkTTL, "unsubscribe-link-ttl", 60*24*time.Hour, "How long a one-click unsubscribe link works.")
	fs.Var((*float32Value)(&o.QPS), "kube-api-qps", "Queries per second to the API server.")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Burst of queries to the API server.")
	return unsubscribeKeyFile
}

type float32Value float32

func (f *float32Value) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 32) }

func (f *float32Value) Set(s string) error {
	v, err := strconv.ParseFloat(s, 32)
	*f = float32Value(v)
	return err
}
