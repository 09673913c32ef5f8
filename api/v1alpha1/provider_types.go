package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderType names the service a provider talks to; the channel follows from it.
// +kubebuilder:validation:Enum=apns;fcm;twilio;sendgrid;smtp;webhook;log
type ProviderType string

const (
	ProviderAPNs     ProviderType = "apns"
	ProviderFCM      ProviderType = "fcm"
	ProviderTwilio   ProviderType = "twilio"
	ProviderSendGrid ProviderType = "sendgrid"
	ProviderSMTP     ProviderType = "smtp"
	ProviderWebhook  ProviderType = "webhook"
	ProviderLog      ProviderType = "log"
)

// Channel is the channel a provider of this type delivers on. A log provider
// has no channel of its own: spec.log.channel says which it stands in for.
func (t ProviderType) Channel() Channel {
	switch t {
	case ProviderAPNs, ProviderFCM:
		return ChannelPush
	case ProviderTwilio:
		return ChannelSMS
	case ProviderSendGrid, ProviderSMTP:
		return ChannelEmail
	case ProviderWebhook:
		return ChannelWebhook
	}
	return ""
}

// Channel is the channel this provider delivers on.
func (s *ChannelProviderSpec) Channel() Channel {
	if s.Type == ProviderLog && s.Log != nil {
		return s.Log.Channel
	}
	return s.Type.Channel()
}

// ServedPlatforms are the device platforms a push provider delivers to
// (spec.platforms, else its type's); nil for other channels.
func (s *ChannelProviderSpec) ServedPlatforms() []Platform {
	switch {
	case s.Channel() != ChannelPush:
		return nil
	case len(s.Platforms) > 0:
		return s.Platforms
	case s.Type == ProviderAPNs:
		return []Platform{PlatformIOS}
	case s.Type == ProviderFCM:
		return []Platform{PlatformAndroid, PlatformWeb}
	}
	return AllPlatforms
}

// Serves reports whether the provider delivers to platform p; every
// provider serves the empty platform (channels other than push).
func (s *ChannelProviderSpec) Serves(p Platform) bool {
	return p == "" || slices.Contains(s.ServedPlatforms(), p)
}

// SharesDefault reports whether two defaults of one channel compete: for
// push, only when they serve a platform in common.
func (s *ChannelProviderSpec) SharesDefault(o *ChannelProviderSpec) bool {
	if s.Channel() != o.Channel() {
		return false
	}
	if s.Channel() != ChannelPush {
		return true
	}
	return slices.ContainsFunc(s.ServedPlatforms(), o.Serves)
}

// ChannelProviderSpec configures one provider.
// +kubebuilder:validation:XValidation:rule="has(self.apns) == (self.type == 'apns')",message="apns must be set when type is apns, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.fcm) == (self.type == 'fcm')",message="fcm must be set when type is fcm, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.twilio) == (self.type == 'twilio')",message="twilio must be set when type is twilio, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.sendgrid) == (self.type == 'sendgrid')",message="sendgrid must be set when type is sendgrid, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.smtp) == (self.type == 'smtp')",message="smtp must be set when type is smtp, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.webhook) == (self.type == 'webhook')",message="webhook must be set when type is webhook, and only then"
// +kubebuilder:validation:XValidation:rule="has(self.log) == (self.type == 'log')",message="log must be set when type is log, and only then"
// +kubebuilder:validation:XValidation:rule="self.type in ['log', 'smtp', 'webhook'] || has(self.secretRef)",message="secretRef is required for types apns, fcm, twilio and sendgrid"
// +kubebuilder:validation:XValidation:rule="self.type != 'webhook' || has(self.webhook.url) || has(self.secretRef)",message="webhook.url, or a secretRef whose Secret has the key url, is required for type webhook"
// +kubebuilder:validation:XValidation:rule="!has(self.receipts) || self.type in ['twilio', 'sendgrid']",message="receipts is supported for types twilio and sendgrid"
// +kubebuilder:validation:XValidation:rule="!has(self.platforms) || self.type in ['apns', 'fcm'] || (self.type == 'log' && has(self.log) && self.log.channel == 'push')",message="platforms is for push providers (apns, fcm, or log with channel push)"
// +kubebuilder:validation:XValidation:rule="self.type != 'apns' || !has(self.platforms) || self.platforms.all(p, p == 'ios')",message="an apns provider serves ios devices only"
type ChannelProviderSpec struct {
	// type of the provider.
	// +required
	Type ProviderType `json:"type"`
	// default makes this the provider for its channel when a Notification
	// names none; for push, for each platform it serves, so an apns default
	// (ios) and an fcm default (android, web) coexist.
	// +optional
	Default bool `json:"default,omitempty"`
	// platforms a push provider serves. Default: apns serves ios; fcm
	// serves android and web (list ios too to send to iOS apps through
	// FCM); a log provider for push serves all three. Each device goes to a
	// provider of its platform.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=3
	Platforms []Platform `json:"platforms,omitempty"`
	// endpoint overrides the provider's base URL (regions, proxies, tests).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	Endpoint string `json:"endpoint,omitempty"`
	// secretRef names the Secret with the credentials; see docs/providers.md for the keys each type needs.
	// A ClusterChannelProvider's Secret lives in the manager's namespace.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// tls adds a CA or, for tests only, skips verification.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
	// rateLimit is a token bucket shared by every send through this provider.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// concurrency is the number of sends in flight at once (default 10).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Concurrency int32 `json:"concurrency,omitempty"`
	// timeout bounds one call to the provider (default 10s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('60s')",message="timeout must be more than 0s and at most 60s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// retry bounds retries of transient errors.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
	// circuitBreaker stops calling the provider after consecutive failures
	// of its own (5xx, timeouts, network errors, refused credentials) for a
	// cool-down, sending its deliveries to spec.fallback meanwhile; then one
	// send probes it. Default: 5 failures, 30s.
	// +optional
	CircuitBreaker *CircuitBreakerPolicy `json:"circuitBreaker,omitempty"`
	// fallback lists providers of the same channel, in order, that take a
	// delivery this provider failed for its own sake (retries exhausted on
	// 5xx, timeouts or network errors, refused credentials, throttling, or
	// not Ready) — never one it failed for the address's or message's sake
	// (InvalidAddress, DeviceUnregistered, Unsubscribed, PayloadRejected).
	// A ChannelProvider name is looked up in the Notification's namespace.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	Fallback []ProviderReference `json:"fallback,omitempty"`

	// +optional
	APNs *APNsConfig `json:"apns,omitempty"`
	// +optional
	FCM *FCMConfig `json:"fcm,omitempty"`
	// +optional
	Twilio *TwilioConfig `json:"twilio,omitempty"`
	// +optional
	SendGrid *SendGridConfig `json:"sendgrid,omitempty"`
	// +optional
	SMTP *SMTPConfig `json:"smtp,omitempty"`
	// +optional
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	// +optional
	Log *LogConfig `json:"log,omitempty"`
	// receipts turns on delivery receipts (twilio, sendgrid): see
	// docs/receipts.md. status.hooks then lists the URLs to configure.
	// +optional
	Receipts *ReceiptsConfig `json:"receipts,omitempty"`
}

// TLSConfig customises the TLS client.
type TLSConfig struct {
	// caSecretRef names a Secret key holding PEM CA certificates to trust in addition to the system's.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`
	// insecureSkipVerify disables server certificate checks. Never in production.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// perSecond is the sustained rate of sends.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	PerSecond int32 `json:"perSecond"`
	// burst is the bucket size (default: perSecond).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Burst int32 `json:"burst,omitempty"`
}

// CircuitBreakerPolicy tunes a provider's circuit breaker.
type CircuitBreakerPolicy struct {
	// consecutiveFailures opens the circuit (default 5; 0 disables the breaker).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	ConsecutiveFailures *int32 `json:"consecutiveFailures,omitempty"`
	// coolDown is how long the circuit stays open before a probe (default 30s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="coolDown must be between 1s and 1h"
	CoolDown *metav1.Duration `json:"coolDown,omitempty"`
}

// RetryPolicy bounds retries of transient errors; permanent errors are never retried.
type RetryPolicy struct {
	// maxAttempts including the first (default 5).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
	// initialBackoff before the second attempt (default 1s); doubled each time, with jitter.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`
	// maxBackoff caps the wait between attempts (default 5m).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="maxBackoff must be at most 1h"
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// APNsConfig configures Apple Push Notification service. Token auth uses teamID,
// keyID and the Secret's key.p8; certificate auth uses the Secret's tls.crt and tls.key.
// +kubebuilder:validation:XValidation:rule="has(self.teamID) == has(self.keyID)",message="teamID and keyID go together (token auth)"
type APNsConfig struct {
	// teamID is the 10-character Apple developer team id.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Z0-9]{10}$`
	TeamID string `json:"teamID,omitempty"`
	// keyID is the 10-character id of the .p8 signing key.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Z0-9]{10}$`
	KeyID string `json:"keyID,omitempty"`
	// topic is the app's bundle id.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Topic string `json:"topic"`
	// environment selects Apple's production or development (sandbox) gateway.
	// +optional
	// +kubebuilder:validation:Enum=production;development
	// +kubebuilder:default=production
	Environment string `json:"environment,omitempty"`
}

// FCMConfig configures Firebase Cloud Messaging (HTTP v1).
type FCMConfig struct {
	// projectID is the Firebase project.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ProjectID string `json:"projectID"`
}

// TwilioConfig configures Twilio Programmable Messaging.
// +kubebuilder:validation:XValidation:rule="has(self.from) != has(self.messagingServiceSID)",message="exactly one of from or messagingServiceSID must be set"
type TwilioConfig struct {
	// from is the sending number in E.164 form.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	From string `json:"from,omitempty"`
	// messagingServiceSID sends through a Messaging Service.
	// +optional
	// +kubebuilder:validation:Pattern=`^MG[0-9a-fA-F]{32}$`
	MessagingServiceSID string `json:"messagingServiceSID,omitempty"`
}

// EmailAddress is an address with an optional display name.
type EmailAddress struct {
	// +required
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	Email string `json:"email"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`
}

// SendGridConfig configures SendGrid's v3 mail send API.
type SendGridConfig struct {
	// from is the sender.
	// +required
	From EmailAddress `json:"from"`
}

// SMTPConfig configures an SMTP relay. Credentials (username, password) are optional Secret keys.
type SMTPConfig struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=587
	Port int32 `json:"port,omitempty"`
	// from is the sender.
	// +required
	From EmailAddress `json:"from"`
	// startTLS requires STARTTLS before authenticating (default true).
	// +optional
	// +kubebuilder:default=true
	StartTLS *bool `json:"startTLS,omitempty"`
}

// WebhookConfig configures a chat or generic webhook.
type WebhookConfig struct {
	// url to POST to; the Secret's url key, when present, wins (chat webhook URLs are secrets).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url,omitempty"`
	// format of the body: json (Herald's envelope), or a chat service's
	// message built from the content's title, text and link and coloured by
	// priority: slack (Block Kit), teams (an Adaptive Card for a Workflows
	// webhook), googlechat, discord (an embed) or mattermost. A template's
	// own webhook body is sent as is in every format.
	// +optional
	// +kubebuilder:validation:Enum=json;slack;teams;googlechat;discord;mattermost
	// +kubebuilder:default=json
	Format string `json:"format,omitempty"`
	// headers added to every request.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 128 && k.matches('^[A-Za-z0-9!#$%&*+.^_`|~-]+$') && size(self[k]) <= 4096)",message="header names must be HTTP tokens of at most 128 characters and values at most 4096 characters"
	Headers map[string]string `json:"headers,omitempty"`
}

// LogConfig configures the development provider that logs messages and
// appends them to an outbox file instead of sending them.
type LogConfig struct {
	// channel this provider stands in for.
	// +required
	Channel Channel `json:"channel"`
	// logContent writes a summary of each message (subject, SMS text, push
	// title) to the manager's log. Off by default: messages can carry
	// one-time codes and reset links, and the manager's log is read by more
	// people than the messages' recipients. The outbox file has the whole
	// message either way.
	// +optional
	LogContent bool `json:"logContent,omitempty"`
}

// ProviderStatus reports whether the provider can send.
type ProviderStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready says whether the Secret and its keys exist and
	// parse; Available whether its circuit breaker lets sends through.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// hooks are the inbound URLs to give the provider (with spec.receipts).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=4
	Hooks []ProviderHook `json:"hooks,omitempty"`
}

// Provider reasons.
const (
	// ReasonCircuitOpen: the provider failed spec.circuitBreaker's number
	// of times in a row; deliveries go to its fallback, or wait for a probe.
	ReasonCircuitOpen = "CircuitOpen"
	// ReasonCircuitClosed: sends go through.
	ReasonCircuitClosed    = "CircuitClosed"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonSecretKeyMissing = "SecretKeyMissing"
	ReasonInvalidSecret    = "InvalidSecret"
	ReasonDuplicateDefault = "DuplicateDefault"
)

// ChannelProvider is one configured provider, usable from its own namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=chp,categories=herald
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChannelProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ChannelProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ChannelProviderList is a list of ChannelProviders.
// +kubebuilder:object:root=true
type ChannelProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChannelProvider `json:"items"`
}

// ClusterChannelProviderSpec is a provider owned by cluster admins.
type ClusterChannelProviderSpec struct {
	ChannelProviderSpec `json:",inline"`
	// allowedNamespaces selects the namespaces that may use this provider; empty selects none.
	// +optional
	AllowedNamespaces *metav1.LabelSelector `json:"allowedNamespaces,omitempty"`
}

// ClusterChannelProvider is a provider for the whole cluster; its Secret lives
// in the manager's namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cchp,categories=herald
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterChannelProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ClusterChannelProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ClusterChannelProviderList is a list of ClusterChannelProviders.
// +kubebuilder:object:root=true
type ClusterChannelProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterChannelProvider `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ChannelProvider{}, &ChannelProviderList{}, &ClusterChannelProvider{}, &ClusterChannelProviderList{})
}
