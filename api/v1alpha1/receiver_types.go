package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReceiverType is the kind of outside system a Receiver listens to.
// +kubebuilder:validation:Enum=alertmanager;github;gitlab;generic
type ReceiverType string

const (
	// ReceiverAlertmanager: Alertmanager's webhook_config (payload
	// version 4), authenticated with a bearer token.
	ReceiverAlertmanager ReceiverType = "alertmanager"
	// ReceiverGitHub: a GitHub webhook, signed with X-Hub-Signature-256.
	ReceiverGitHub ReceiverType = "github"
	// ReceiverGitLab: a GitLab webhook, with the secret token in X-Gitlab-Token.
	ReceiverGitLab ReceiverType = "gitlab"
	// ReceiverGeneric: any JSON object, with a bearer token; the object
	// becomes the params.
	ReceiverGeneric ReceiverType = "generic"
)

// ReceiverSecretKey is the key of a Receiver's Secret: the bearer token
// (alertmanager, generic), the webhook secret (github) or the secret
// token (gitlab).
const ReceiverSecretKey = "token"

// ReceiverSpec says which outside events become which Notifications.
// +kubebuilder:validation:XValidation:rule="(has(self.recipients) && size(self.recipients) > 0) || has(self.recipientSelector)",message="recipients or recipientSelector must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.events) || self.type in ['github', 'gitlab']",message="events applies to types github and gitlab"
type ReceiverSpec struct {
	// type of the sender of events.
	// +required
	Type ReceiverType `json:"type"`
	// secretRef names a Secret in the namespace whose key "token" holds the
	// bearer token (alertmanager, generic), the webhook secret (github) or
	// the secret token (gitlab).
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
	// events lists the event kinds to act on: GitHub's X-GitHub-Event
	// (default workflow_run) or GitLab's object_kind (default pipeline).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	Events []string `json:"events,omitempty"`
	// statuses keeps only events in one of these states: Alertmanager's
	// firing/resolved, a GitHub workflow run's conclusion (failure,
	// success, cancelled, timed_out...), a GitLab pipeline's status
	// (failed, success, canceled...). Default: all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	Statuses []string `json:"statuses,omitempty"`
	// templateRef names the Template the Notifications use.
	// +required
	TemplateRef LocalObjectReference `json:"templateRef"`
	// params are defaults the event's params are laid over.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Params *apiextensionsv1.JSON `json:"params,omitempty"`
	// recipients of every Notification, as in a Notification.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Recipients []Recipient `json:"recipients,omitempty"`
	// recipientSelector selects UserPreferences in the namespace by label.
	// +optional
	RecipientSelector *metav1.LabelSelector `json:"recipientSelector,omitempty"`
	// channels restricts delivery to these channels.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Channels []Channel `json:"channels,omitempty"`
	// category for opt-outs; default: the template's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Category string `json:"category,omitempty"`
	// priority of the Notifications.
	// +optional
	// +kubebuilder:default=normal
	Priority Priority `json:"priority,omitempty"`
}

// ReceiverStatus shows where to send events and what came of them.
type ReceiverStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready says whether the Secret and its token exist.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// webhookPath is the path on Herald's inbound server to send events to.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	WebhookPath string `json:"webhookPath,omitempty"`
	// url is webhookPath under the manager's public URL, when it has one.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
	// eventsReceived counts authenticated requests, acted on or not.
	// +optional
	EventsReceived int64 `json:"eventsReceived,omitempty"`
	// notificationsCreated counts the Notifications made from them.
	// +optional
	NotificationsCreated int64 `json:"notificationsCreated,omitempty"`
	// lastEventTime is when the last authenticated request arrived.
	// +optional
	LastEventTime *metav1.Time `json:"lastEventTime,omitempty"`
	// lastNotification names the last Notification created.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LastNotification string `json:"lastNotification,omitempty"`
	// lastError is why the last refused or failed event was not acted on.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
}

// LabelReceiver names the Receiver that created a Notification.
const LabelReceiver = "notify.herald.dev/receiver"

// Receiver reasons.
const (
	ReasonReceiving = "Receiving"
)

// Receiver turns outside events (Alertmanager, GitHub, GitLab, any JSON)
// into Notifications from a Template.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rcv,categories=herald
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Events",type=integer,JSONPath=`.status.eventsReceived`
// +kubebuilder:printcolumn:name="Created",type=integer,JSONPath=`.status.notificationsCreated`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Receiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ReceiverSpec `json:"spec"`
	// +optional
	Status ReceiverStatus `json:"status,omitempty"`
}

// ReceiverList is a list of Receivers.
// +kubebuilder:object:root=true
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Receiver{}, &ReceiverList{})
}
