package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChannelContent holds the message bodies for each channel. Bodies are Go
// templates; see docs/templates.md for the data and functions they may use.
// +kubebuilder:validation:MinProperties=1
type ChannelContent struct {
	// email bodies.
	// +optional
	Email *EmailContent `json:"email,omitempty"`
	// sms body.
	// +optional
	SMS *SMSContent `json:"sms,omitempty"`
	// push notification fields.
	// +optional
	Push *PushContent `json:"push,omitempty"`
	// webhook message.
	// +optional
	Webhook *WebhookContent `json:"webhook,omitempty"`
}

// EmailContent is an email's subject and bodies. At least one body is needed.
// +kubebuilder:validation:XValidation:rule="has(self.text) || has(self.html)",message="email needs text or html"
type EmailContent struct {
	// subject line template; it must render to a single line.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Subject string `json:"subject"`
	// text is the plain-text body template.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Text string `json:"text,omitempty"`
	// html is the HTML body template, rendered with html/template so params are escaped.
	// +optional
	// +kubebuilder:validation:MaxLength=131072
	HTML string `json:"html,omitempty"`
}

// SMSContent is a text message.
type SMSContent struct {
	// text template; the rendered text may span at most 10 segments.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Text string `json:"text"`
}

// PushContent is a mobile or web push notification.
type PushContent struct {
	// title template.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Title string `json:"title,omitempty"`
	// body template.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Body string `json:"body"`
	// data is custom key/value data; values are templates.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 256 && size(self[k]) <= 1024)",message="data keys must be at most 256 characters and values at most 1024"
	Data map[string]string `json:"data,omitempty"`
	// sound to play on iOS ("default" for the system sound).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Sound string `json:"sound,omitempty"`
	// badge number to show on the app icon (iOS).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Badge *int32 `json:"badge,omitempty"`
	// collapseKey folds repeated notifications on the device (APNs collapse id,
	// FCM collapse key). Defaults to the notification's uid.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CollapseKey string `json:"collapseKey,omitempty"`
}

// WebhookContent is a chat or webhook message: a title, text and link (the
// provider's format turns them into a Slack, Teams, Google Chat, Discord or
// Mattermost message, or Herald's JSON envelope), or a full JSON body.
// +kubebuilder:validation:XValidation:rule="has(self.text) || has(self.title) || has(self.body)",message="webhook needs text, title or body"
type WebhookContent struct {
	// title template: the message's heading.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Title string `json:"title,omitempty"`
	// link template: a URL the message points to (a button or a linked title).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Link string `json:"link,omitempty"`
	// text template: the message's body.
	// +optional
	// +kubebuilder:validation:MaxLength=40000
	Text string `json:"text,omitempty"`
	// body is a template that must render to valid JSON; when set it is sent as is.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Body string `json:"body,omitempty"`
}

// TemplateSpec is a reusable, localized message.
type TemplateSpec struct {
	// category of notifications sent with this template (for opt-outs), e.g. "build", "marketing".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Category string `json:"category,omitempty"`
	// channels holds the default bodies per channel.
	// +required
	Channels ChannelContent `json:"channels"`
	// locales holds bodies per BCP 47 language tag ("ko", "pt-BR"); a recipient's
	// locale falls back by language, then to channels.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Locales map[string]ChannelContent `json:"locales,omitempty"`
	// requiredParams names params every Notification using this template must pass.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	RequiredParams []string `json:"requiredParams,omitempty"`
}

// TemplateStatus reports whether every body parses.
type TemplateStatus struct {
	// observedGeneration is the generation last checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready is False with reason InvalidTemplate when a body does not parse.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Template reasons.
const (
	// ReasonInvalidTemplate: a body does not parse; the message names channel, locale, line and column.
	ReasonInvalidTemplate = "InvalidTemplate"
)

// Template is a reusable, localized message with bodies per channel.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ntpl,categories=herald
// +kubebuilder:printcolumn:name="Category",type=string,JSONPath=`.spec.category`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Template struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec TemplateSpec `json:"spec"`
	// +optional
	Status TemplateStatus `json:"status,omitempty"`
}

// TemplateList is a list of Templates.
// +kubebuilder:object:root=true
type TemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Template `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Template{}, &TemplateList{})
}
