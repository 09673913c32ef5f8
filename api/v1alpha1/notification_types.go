package v1alpha1

import (
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Recipient is one person, address, device or chat room. Exactly one field is set.
//
// "Exactly one" is a property count, not a CEL rule: the API server checks
// it cheaply on every status write of a fan-out child (a CEL rule per
// recipient cost about 8 % of its CPU there).
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type Recipient struct {
	// user is the name of a UserPreference in the Notification's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	User string `json:"user,omitempty"`
	// email address.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	Email string `json:"email,omitempty"`
	// phone number in E.164 form, e.g. +14155550100.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`
	// device is a push token.
	// +optional
	Device *DeviceTarget `json:"device,omitempty"`
	// webhook is the name of a webhook-type provider; its chat room is the recipient.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Webhook string `json:"webhook,omitempty"`
}

// DeviceTarget is one push token.
type DeviceTarget struct {
	// platform of the device.
	// +required
	Platform Platform `json:"platform"`
	// token is the device or registration token the push service issued.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Token string `json:"token"`
}

// ProviderReference names a ChannelProvider in the namespace or a ClusterChannelProvider.
type ProviderReference struct {
	// kind of the provider.
	// +optional
	// +kubebuilder:validation:Enum=ChannelProvider;ClusterChannelProvider
	// +kubebuilder:default=ChannelProvider
	Kind string `json:"kind,omitempty"`
	// name of the provider.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ProviderRoute names the provider for a channel (or push platform) and,
// optionally, the providers that take over from it for this Notification.
type ProviderRoute struct {
	ProviderReference `json:",inline"`
	// fallback replaces the named provider's own spec.fallback for this
	// Notification: providers of the same channel, in order, that take a
	// delivery it failed for its own sake.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	Fallback []ProviderReference `json:"fallback,omitempty"`
}

// ProviderOverrides picks a provider per channel (and, for push, per
// platform) instead of the default.
type ProviderOverrides struct {
	// +optional
	Push *ProviderRoute `json:"push,omitempty"`
	// +optional
	SMS *ProviderRoute `json:"sms,omitempty"`
	// +optional
	Email *ProviderRoute `json:"email,omitempty"`
	// +optional
	Webhook *ProviderRoute `json:"webhook,omitempty"`
	// ios, android and web pick the push provider for devices of that
	// platform; they win over push.
	// +optional
	IOS *ProviderRoute `json:"ios,omitempty"`
	// +optional
	Android *ProviderRoute `json:"android,omitempty"`
	// +optional
	Web *ProviderRoute `json:"web,omitempty"`
}

// NotificationSpec says what to send, to whom and when.
// +kubebuilder:validation:XValidation:rule="has(self.templateRef) != has(self.content)",message="exactly one of templateRef or content must be set"
// +kubebuilder:validation:XValidation:rule="(has(self.recipients) && size(self.recipients) > 0) || has(self.recipientSelector)",message="recipients or recipientSelector must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.sendAt) || !has(self.expiresAfter) || duration(self.expiresAfter) >= duration('1m')",message="expiresAfter must be at least 1m when sendAt is set: it counts from sendAt"
// recipients, recipientSelector and delivery cannot change once the
// Notification exists (Herald's ValidatingAdmissionPolicy, installed with
// the CRDs, refuses the edit).
type NotificationSpec struct {
	// templateRef names a Template in the namespace.
	// +optional
	TemplateRef *LocalObjectReference `json:"templateRef,omitempty"`
	// content is an inline template, the same shape as a Template's channels.
	// +optional
	Content *ChannelContent `json:"content,omitempty"`
	// params is a JSON object passed to the templates as .Params.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Params *apiextensionsv1.JSON `json:"params,omitempty"`
	// recipients lists who to notify.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Recipients []Recipient `json:"recipients,omitempty"`
	// recipientSelector selects UserPreferences in the namespace by label (fan-out).
	// +optional
	RecipientSelector *metav1.LabelSelector `json:"recipientSelector,omitempty"`
	// channels restricts delivery to these channels; default: every channel the content defines.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Channels []Channel `json:"channels,omitempty"`
	// fallback lists channels in the order a recipient is tried on them:
	// a later channel is sent only when every delivery of the earlier ones
	// ended without reaching the recipient (no address or device, opted
	// out, dead device, failed), never in addition to a success. Channels
	// not listed are sent alongside as usual.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Fallback []Channel `json:"fallback,omitempty"`
	// category for opt-outs; default: the template's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Category string `json:"category,omitempty"`
	// priority: critical overrides quiet hours and category opt-outs.
	// +optional
	// +kubebuilder:default=normal
	Priority Priority `json:"priority,omitempty"`
	// sendAt delays delivery until this time.
	// +optional
	SendAt *metav1.Time `json:"sendAt,omitempty"`
	// expiresAfter: deliveries not sent this long after creation (or after sendAt) become Expired.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('720h')",message="expiresAfter must be between 0s and 720h"
	ExpiresAfter *metav1.Duration `json:"expiresAfter,omitempty"`
	// delivery says what happens to a message whose send may have happened
	// but was not recorded (the manager crashed mid-send): AtLeastOnce sends
	// it again (a duplicate is possible), AtMostOnce records it Unknown
	// with reason Interrupted instead (nothing is sent twice; the doubt is
	// visible). AtMostOnce costs one more status write per batch of sends.
	// +optional
	// +kubebuilder:default=AtLeastOnce
	Delivery DeliveryMode `json:"delivery,omitempty"`
	// idempotencyKey: a later Notification with the same key in the namespace,
	// inside the dedup window, sends nothing.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// providers overrides the provider per channel.
	// +optional
	Providers *ProviderOverrides `json:"providers,omitempty"`
	// ttlSecondsAfterFinished deletes the Notification this long after it finishes;
	// default from the manager's --default-ttl-after-finished flag.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// DeliveryMode is what a send cut short by a crash becomes.
// +kubebuilder:validation:Enum=AtLeastOnce;AtMostOnce
type DeliveryMode string

const (
	// AtLeastOnce sends again what may not have been sent.
	AtLeastOnce DeliveryMode = "AtLeastOnce"
	// AtMostOnce never sends twice: what may have been sent is Unknown.
	AtMostOnce DeliveryMode = "AtMostOnce"
)

// NotificationPhase is where a Notification is in its life.
// +kubebuilder:validation:Enum=Pending;Scheduled;Sending;Sent;PartiallySent;Failed;Suppressed;Expired
type NotificationPhase string

const (
	PhasePending       NotificationPhase = "Pending"
	PhaseScheduled     NotificationPhase = "Scheduled"
	PhaseSending       NotificationPhase = "Sending"
	PhaseSent          NotificationPhase = "Sent"
	PhasePartiallySent NotificationPhase = "PartiallySent"
	PhaseFailed        NotificationPhase = "Failed"
	PhaseSuppressed    NotificationPhase = "Suppressed"
	PhaseExpired       NotificationPhase = "Expired"
)

// Finished reports whether the phase is terminal.
func (p NotificationPhase) Finished() bool { return slices.Contains(FinishedPhases, p) }

// Ready reports whether the phase counts as success: Sent or Suppressed.
func (p NotificationPhase) Ready() bool { return p == PhaseSent || p == PhaseSuppressed }

// DeliveryState is where one (recipient, channel, address) delivery is.
// +kubebuilder:validation:Enum=Pending;Deferred;Sending;Retrying;Sent;Delivered;Failed;Suppressed;Expired;Unknown
type DeliveryState string

const (
	DeliveryPending    DeliveryState = "Pending"
	DeliveryDeferred   DeliveryState = "Deferred"
	DeliverySending    DeliveryState = "Sending"
	DeliveryRetrying   DeliveryState = "Retrying"
	DeliverySent       DeliveryState = "Sent"
	DeliveryDelivered  DeliveryState = "Delivered"
	DeliveryFailed     DeliveryState = "Failed"
	DeliverySuppressed DeliveryState = "Suppressed"
	DeliveryExpired    DeliveryState = "Expired"
	// DeliveryUnknown: an AtMostOnce send that may or may not have reached
	// the provider (reason Interrupted); it is not tried again.
	DeliveryUnknown DeliveryState = "Unknown"
)

// Terminal reports whether the delivery will not change again.
func (s DeliveryState) Terminal() bool {
	switch s {
	case DeliverySent, DeliveryDelivered, DeliveryFailed, DeliverySuppressed, DeliveryExpired, DeliveryUnknown:
		return true
	}
	return false
}

// Delivery is the log of one message to one address on one channel.
type Delivery struct {
	// id is stable across reconciles: recipient index, channel and address index.
	// +required
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// recipient as written in spec (a user name, or a masked address).
	// +required
	// +kubebuilder:validation:MaxLength=253
	Recipient string `json:"recipient"`
	// channel of this delivery.
	// +required
	Channel Channel `json:"channel"`
	// address, masked.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Address string `json:"address,omitempty"`
	// provider that sends it, as Kind/name.
	// +optional
	// +kubebuilder:validation:MaxLength=300
	Provider string `json:"provider,omitempty"`
	// state of the delivery.
	// +required
	State DeliveryState `json:"state"`
	// reason is a CamelCase word for the state, e.g. OptedOut, QuietHours, DeviceUnregistered.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// firstAttemptTime is when the first attempt started. A delivery its
	// first attempt sent (attempts 1, sentTime set) omits it and
	// lastAttemptTime: sentTime is that attempt.
	// +optional
	FirstAttemptTime *metav1.Time `json:"firstAttemptTime,omitempty"`
	// lastAttemptTime is when the latest attempt started.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// nextAttemptTime is when a Deferred or Retrying delivery is tried again.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
	// +optional
	SentTime *metav1.Time `json:"sentTime,omitempty"`
	// deliveredTime is when the provider's receipt said the message arrived
	// (state Delivered).
	// +optional
	DeliveredTime *metav1.Time `json:"deliveredTime,omitempty"`
	// providerMessageID is the id the provider gave the message.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ProviderMessageID string `json:"providerMessageID,omitempty"`
	// message is a human-readable detail (the provider's error, masked).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// triedProviders lists the providers that failed this delivery before
	// provider, oldest first: it failed over from each (see a provider's
	// spec.fallback).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=6
	// +kubebuilder:validation:items:MaxLength=300
	TriedProviders []string `json:"triedProviders,omitempty"`
}

// FirstAttempt is when d's first attempt started: firstAttemptTime, or
// sentTime for a delivery its first attempt sent (the ledger omits the
// attempt times then); nil before any attempt.
func (d *Delivery) FirstAttempt() *metav1.Time {
	if d.FirstAttemptTime == nil && d.Attempts == 1 {
		return d.SentTime
	}
	return d.FirstAttemptTime
}

// LastAttempt is when d's latest attempt started, read like FirstAttempt.
func (d *Delivery) LastAttempt() *metav1.Time {
	if d.LastAttemptTime == nil && d.Attempts == 1 {
		return d.SentTime
	}
	return d.LastAttemptTime
}

// DeliverySummary counts deliveries by outcome, children included.
type DeliverySummary struct {
	// +optional
	Total int32 `json:"total"`
	// pending counts deliveries not yet terminal (Pending, Deferred, Sending, Retrying).
	// +optional
	Pending int32 `json:"pending"`
	// sent counts Sent and Delivered.
	// +optional
	Sent int32 `json:"sent"`
	// failed counts Failed, Expired and Unknown (not known to be sent),
	// except on a spec.fallback channel of a recipient that a later
	// fallback channel reached: those count as suppressed.
	// +optional
	Failed int32 `json:"failed"`
	// +optional
	Suppressed int32 `json:"suppressed"`
	// delivered counts Delivered: the part of sent a provider's receipt
	// confirmed (see docs/receipts.md).
	// +optional
	Delivered int32 `json:"delivered,omitempty"`
}

// Add counts one delivery in state st.
func (s *DeliverySummary) Add(st DeliveryState) {
	s.Total++
	switch st {
	case DeliverySent:
		s.Sent++
	case DeliveryDelivered:
		s.Sent++
		s.Delivered++
	case DeliveryFailed, DeliveryExpired, DeliveryUnknown:
		s.Failed++
	case DeliverySuppressed:
		s.Suppressed++
	default:
		s.Pending++
	}
}

// Plus returns the sum of two summaries.
func (s DeliverySummary) Plus(o DeliverySummary) DeliverySummary {
	return DeliverySummary{Total: s.Total + o.Total, Pending: s.Pending + o.Pending, Sent: s.Sent + o.Sent, Failed: s.Failed + o.Failed, Suppressed: s.Suppressed + o.Suppressed, Delivered: s.Delivered + o.Delivered}
}

// NotificationStatus is the notification log.
type NotificationStatus struct {
	// observedGeneration is the generation last planned.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase summarises the deliveries.
	// +optional
	Phase NotificationPhase `json:"phase,omitempty"`
	// conditions: Ready (True iff Sent or Suppressed), Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// summary counts deliveries, those of child Notifications included.
	// +optional
	Summary DeliverySummary `json:"summary,omitempty"`
	// deliveries is one entry per (recipient, channel, address), each with a
	// unique id. Atomic: Herald writes it whole (a merge patch under an
	// optimistic lock), and per-entry field ownership would cost the API
	// server half of every status write (docs/benchmarks.md).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2000
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// children names the child Notifications a large fan-out was split into.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Children []string `json:"children,omitempty"`
	// duplicateOf names the Notification that already used this idempotencyKey.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DuplicateOf string `json:"duplicateOf,omitempty"`
	// startTime is when the first delivery was attempted.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the last delivery became terminal.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// Notification reasons (conditions, deliveries and Events).
const (
	ReasonPlanned            = "Planned"
	ReasonScheduled          = "Scheduled"
	ReasonSending            = "Sending"
	ReasonAllSent            = "AllSent"
	ReasonSomeFailed         = "SomeFailed"
	ReasonAllFailed          = "AllFailed"
	ReasonSuppressedAll      = "AllSuppressed"
	ReasonNoRecipients       = "NoRecipients"
	ReasonDuplicate          = "Duplicate"
	ReasonExpired            = "Expired"
	ReasonTemplateNotFound   = "TemplateNotFound"
	ReasonRenderError        = "RenderError"
	ReasonMissingParams      = "MissingParams"
	ReasonProviderNotReady   = "ProviderNotReady"
	ReasonUserNotFound       = "UserNotFound"
	ReasonChannelDisabled    = "ChannelDisabled"
	ReasonOptedOut           = "OptedOut"
	ReasonQuietHours         = "QuietHours"
	ReasonRateCapped         = "MaxPerHour"
	ReasonNoAddress          = "NoAddress"
	ReasonDeviceUnregistered = "DeviceUnregistered"
	ReasonUnsubscribed       = "Unsubscribed"
	ReasonProviderError      = "ProviderError"
	ReasonTransientError     = "TransientError"
)

// Labels Herald sets on Notifications.
const (
	// LabelParent names the parent of a child Notification.
	LabelParent = "notify.herald.dev/parent"
)

// FieldPhase is the selectable field that holds the phase. The manager's cache
// leaves finished Notifications out by it, so memory does not grow with
// history and finishing needs no write besides the status that says so.
const FieldPhase = "status.phase"

// FinishedPhases are the terminal phases.
var FinishedPhases = []NotificationPhase{PhaseSent, PhasePartiallySent, PhaseFailed, PhaseSuppressed, PhaseExpired}

// UnfinishedSelector is a field selector (see FieldPhase) matching
// Notifications that are not finished, those never reconciled included.
func UnfinishedSelector() string {
	terms := make([]string, len(FinishedPhases))
	for i, p := range FinishedPhases {
		terms[i] = FieldPhase + "!=" + string(p)
	}
	return strings.Join(terms, ",")
}

// FinishedSelector is a field selector matching finished Notifications.
func FinishedSelector() string {
	terms := []string{FieldPhase + "!="}
	for _, p := range []NotificationPhase{PhasePending, PhaseScheduled, PhaseSending} {
		terms = append(terms, FieldPhase+"!="+string(p))
	}
	return strings.Join(terms, ",")
}

// Delivery reasons a provider's answer gives (senders classify them).
const (
	// ReasonInvalidAddress: the provider refused the address (bad number,
	// malformed token or email); permanent.
	ReasonInvalidAddress = "InvalidAddress"
	// ReasonAuthFailed: the provider refused Herald's credentials or its
	// certificate was not trusted; permanent.
	ReasonAuthFailed = "AuthFailed"
	// ReasonPayloadRejected: the provider refused the message itself.
	ReasonPayloadRejected = "PayloadRejected"
	// ReasonRejected: any other refusal (4xx).
	ReasonRejected = "Rejected"
	// ReasonRateLimited: the provider asked to slow down (429); retried.
	ReasonRateLimited = "RateLimited"
	// ReasonUnavailable: the provider failed (5xx); retried.
	ReasonUnavailable = "ProviderUnavailable"
	// ReasonTimeout: no answer in time; retried.
	ReasonTimeout = "Timeout"
	// ReasonNetwork: the connection failed; retried.
	ReasonNetwork = "NetworkError"
)

// Channel fallback (spec.fallback): a later channel's delivery waits while
// an earlier channel may still reach the recipient (FallbackPending), and
// is not sent once one did (FallbackNotNeeded).
const (
	ReasonFallbackPending   = "FallbackPending"
	ReasonFallbackNotNeeded = "FallbackNotNeeded"
)

// ReasonFailedOver: the delivery's provider failed it with a provider-level
// error (see ProviderLevel) and it goes to the next in the provider's
// fallback list.
const ReasonFailedOver = "FailedOver"

// ProviderLevel reports whether a delivery failed for its provider's sake
// (outage, timeout, network, credentials, throttling, or no usable
// provider) rather than its address's or message's: only such a failure
// moves the delivery to a fallback provider.
func ProviderLevel(reason string) bool {
	switch reason {
	case ReasonUnavailable, ReasonTimeout, ReasonNetwork, ReasonAuthFailed, ReasonRateLimited, ReasonProviderNotReady, ReasonCircuitOpen:
		return true
	}
	return false
}

// ReasonInterrupted: the manager stopped while an AtMostOnce delivery was
// being sent; whether the provider took it is unknown.
const ReasonInterrupted = "Interrupted"

// ReasonNoContent: the content defines no message for the delivery's channel.
const ReasonNoContent = "NoContent"

// ReasonNotPlanned: the delivery's recipient is no longer among those the
// Notification resolves to (a user left the selector before it was sent).
const ReasonNotPlanned = "NotPlanned"

// Notification asks Herald to deliver a message to recipients; its status is the delivery log.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=notif,categories=herald
// +kubebuilder:selectablefield:JSONPath=`.spec.idempotencyKey`
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Sent",type=integer,JSONPath=`.status.summary.sent`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.summary.delivered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.summary.failed`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.summary.total`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Notification struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec NotificationSpec `json:"spec"`
	// +optional
	Status NotificationStatus `json:"status,omitempty"`
}

// NotificationList is a list of Notifications.
// +kubebuilder:object:root=true
type NotificationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Notification `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Notification{}, &NotificationList{})
}

// Override is the provider a Notification names for channel ch and, for
// push, the device platform: the platform's entry, else the channel's; nil
// when it names none.
func (p *ProviderOverrides) Override(ch Channel, platform Platform) *ProviderRoute {
	if p == nil {
		return nil
	}
	switch ch {
	case ChannelPush:
		var ref *ProviderRoute
		switch platform {
		case PlatformIOS:
			ref = p.IOS
		case PlatformAndroid:
			ref = p.Android
		case PlatformWeb:
			ref = p.Web
		}
		if ref != nil {
			return ref
		}
		return p.Push
	case ChannelSMS:
		return p.SMS
	case ChannelEmail:
		return p.Email
	case ChannelWebhook:
		return p.Webhook
	}
	return nil
}
