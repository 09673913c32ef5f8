{{- define "herald.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{- define "herald.labels" -}}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/part-of: herald
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "herald.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The manager's arguments: one per flag (internal/manager.BindFlags). */}}
{{- define "herald.args" -}}
{{- $m := .Values.manager -}}
- --leader-elect={{ $m.leaderElect }}
- --leader-elect-lease-duration={{ $m.leaderElectLeaseDuration }}
- --leader-elect-renew-deadline={{ $m.leaderElectRenewDeadline }}
- --leader-elect-retry-period={{ $m.leaderElectRetryPeriod }}
- --leader-election-namespace={{ $m.leaderElectionNamespace | default .Release.Namespace }}
- --metrics-bind-address=:{{ .Values.metrics.port }}
- --health-probe-bind-address=:{{ .Values.probes.port }}
- --pprof-bind-address={{ $m.pprofBindAddress }}
- --namespace=$(POD_NAMESPACE)
- --shutdown-drain-timeout={{ $m.shutdownDrainTimeout }}
- --default-ttl-after-finished={{ $m.defaultTTLAfterFinished }}
- --dedup-window={{ $m.dedupWindow }}
- --egress-allow-cidrs={{ $m.egressAllowCIDRs }}
- --allow-insecure-skip-verify={{ $m.allowInsecureSkipVerify }}
- --outbox-dir={{ $m.outboxDir }}
- --max-deliveries-per-object={{ $m.maxDeliveriesPerObject }}
- --notification-workers={{ $m.notificationWorkers }}
- --status-flush-delay={{ $m.statusFlushDelay }}
- --status-hold={{ $m.statusHold }}
- --max-unrecorded-sends={{ $m.maxUnrecordedSends }}
- --journal-dir={{ if $m.journal.enabled }}/var/lib/herald/journal{{ end }}
- --max-pending={{ $m.maxPending }}
- --normal-events={{ $m.normalEvents }}
- --metrics-namespace-label-limit={{ $m.metricsNamespaceLabelLimit }}
- --audit-log={{ $m.auditLog }}
{{- if $m.inbound.enabled }}
- --inbound-addr=:{{ $m.inbound.port }}
{{- else }}
- --inbound-addr=0
{{- end }}
- --inbound-public-url={{ $m.inbound.publicURL }}
- --inbound-cert-dir={{ if $m.inbound.certSecret }}/var/run/herald/inbound-tls{{ end }}
- --inbound-max-body-bytes={{ int64 $m.inbound.maxBodyBytes }}
- --inbound-rate={{ $m.inbound.rate }}
- --inbound-burst={{ $m.inbound.burst }}
- --unsubscribe-key-file={{ if $m.unsubscribe.keySecret }}/var/run/herald/unsubscribe/key{{ end }}
- --unsubscribe-link-ttl={{ $m.unsubscribe.linkTTL }}
- --kube-api-qps={{ $m.kubeAPIQPS }}
- --kube-api-burst={{ $m.kubeAPIBurst }}
- --zap-log-level={{ $m.log.level }}
- --zap-encoder={{ $m.log.encoder }}
- --zap-devel={{ $m.log.development }}
- --zap-stacktrace-level={{ $m.log.stacktraceLevel }}
- --zap-time-encoding={{ $m.log.timeEncoding }}
{{- range $m.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}
