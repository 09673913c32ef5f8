package v1alpha1

// Channel is a way of reaching a person.
// +kubebuilder:validation:Enum=push;sms;email;webhook
type Channel string

const (
	ChannelPush    Channel = "push"
	ChannelSMS     Channel = "sms"
	ChannelEmail   Channel = "email"
	ChannelWebhook Channel = "webhook"
)

// AllChannels lists every channel in a fixed order.
var AllChannels = []Channel{ChannelPush, ChannelSMS, ChannelEmail, ChannelWebhook}

// Priority orders notifications; critical overrides quiet hours and category
// opt-outs, never a disabled channel or an explicit unsubscribe.
// +kubebuilder:validation:Enum=low;normal;high;critical
type Priority string

const (
	PriorityLow      Priority = "low"
	PriorityNormal   Priority = "normal"
	PriorityHigh     Priority = "high"
	PriorityCritical Priority = "critical"
)

// Platform is the kind of device a push token belongs to.
// +kubebuilder:validation:Enum=ios;android;web
type Platform string

const (
	PlatformIOS     Platform = "ios"
	PlatformAndroid Platform = "android"
	PlatformWeb     Platform = "web"
)

// AllPlatforms are the device platforms, in a fixed order.
var AllPlatforms = []Platform{PlatformIOS, PlatformAndroid, PlatformWeb}

// LocalObjectReference names an object in the same namespace.
// +structType=atomic
type LocalObjectReference struct {
	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret.
// +structType=atomic
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default="ca.crt"
	Key string `json:"key,omitempty"`
}

// Condition types, per kstatus: Ready is the summary a person or
// `kubectl wait` reads; Reconciling means work is in progress; Stalled means
// no progress is possible without a change by a person.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionFinished (Notifications only) turns True when the
	// Notification has finished, whatever the outcome, as a Job's Complete or
	// Failed does: `kubectl wait --for=condition=Finished` returns on
	// failure too. Its reason is the outcome's (AllSent, AllFailed, ...).
	ConditionFinished = "Finished"
	// ConditionAvailable (providers only) is False while the provider's
	// circuit breaker is open: it failed too often in a row and is not
	// called until a probe succeeds. Ready keeps meaning "configured".
	ConditionAvailable = "Available"
)

// Condition reasons shared by several kinds.
const (
	// ReasonSucceeded: the object is what it should be.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: work is under way.
	ReasonProgressing = "Progressing"
	// ReasonInvalidSpec: the spec is wrong in a way admission could not catch.
	ReasonInvalidSpec = "InvalidSpec"
)
