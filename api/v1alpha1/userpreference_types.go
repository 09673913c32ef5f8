package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Device is one push target of a user.
type Device struct {
	// +required
	Platform Platform `json:"platform"`
	// token the push service issued for this app install.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Token string `json:"token"`
	// name is a label for people ("alice's phone").
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
}

// ChannelSwitches turns whole channels on or off for a user; unset means on.
type ChannelSwitches struct {
	// +optional
	Email *bool `json:"email,omitempty"`
	// +optional
	SMS *bool `json:"sms,omitempty"`
	// +optional
	Push *bool `json:"push,omitempty"`
	// +optional
	Webhook *bool `json:"webhook,omitempty"`
}

// OptOut turns off a category on some or all channels.
type OptOut struct {
	// category to opt out of.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Category string `json:"category"`
	// channels the opt-out applies to; empty means all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Channels []Channel `json:"channels,omitempty"`
}

// QuietHours is a daily window, in the user's time zone, when only critical
// notifications are sent; others wait until it ends. end before start crosses midnight.
// +kubebuilder:validation:XValidation:rule="self.start != self.end",message="quietHours start and end must differ"
type QuietHours struct {
	// start as HH:MM (24-hour).
	// +required
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`
	// end as HH:MM (24-hour).
	// +required
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	End string `json:"end"`
}

// UserPreferenceSpec is one user's contacts and choices.
type UserPreferenceSpec struct {
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+\.[^@\s]+$`
	Email string `json:"email,omitempty"`
	// phone in E.164 form.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Phone string `json:"phone,omitempty"`
	// devices receive push notifications.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Devices []Device `json:"devices,omitempty"`
	// locale is a BCP 47 tag ("en", "pt-BR") that picks a Template's locale.
	// +optional
	// +kubebuilder:validation:MaxLength=35
	// +kubebuilder:validation:Pattern=`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`
	Locale string `json:"locale,omitempty"`
	// timeZone is an IANA name ("Europe/Berlin") for quiet hours and dates; default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TimeZone string `json:"timeZone,omitempty"`
	// channels switches channels off; unset channels are on.
	// +optional
	Channels *ChannelSwitches `json:"channels,omitempty"`
	// optOut lists categories the user does not want.
	// +optional
	// +listType=map
	// +listMapKey=category
	// +kubebuilder:validation:MaxItems=64
	OptOut []OptOut `json:"optOut,omitempty"`
	// quietHours defers non-critical notifications.
	// +optional
	QuietHours *QuietHours `json:"quietHours,omitempty"`
	// maxPerHour caps non-critical messages to this user per hour, all channels together; 0 means no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MaxPerHour int32 `json:"maxPerHour,omitempty"`
}

// DeadDevice is a push token the push service declared gone.
type DeadDevice struct {
	// tokenHash is the hex SHA-256 of the token (the token itself is never stored twice).
	// +required
	// +kubebuilder:validation:MaxLength=64
	TokenHash string `json:"tokenHash"`
	// reason the service gave, e.g. DeviceUnregistered.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// +optional
	Time metav1.Time `json:"time,omitempty"`
}

// UnsubscribedAddress is a phone or email that asked to receive nothing more (STOP, unsubscribe).
type UnsubscribedAddress struct {
	// +required
	Channel Channel `json:"channel"`
	// addressHash is the hex SHA-256 of the address.
	// +required
	// +kubebuilder:validation:MaxLength=64
	AddressHash string `json:"addressHash"`
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// +optional
	Time metav1.Time `json:"time,omitempty"`
}

// UserPreferenceStatus reports validity and what the providers taught us.
type UserPreferenceStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// deadDevices are skipped by later notifications until their token changes.
	// +optional
	// +listType=map
	// +listMapKey=tokenHash
	// +kubebuilder:validation:MaxItems=64
	DeadDevices []DeadDevice `json:"deadDevices,omitempty"`
	// unsubscribed addresses are skipped, even for critical notifications.
	// +optional
	// +listType=map
	// +listMapKey=addressHash
	// +kubebuilder:validation:MaxItems=16
	Unsubscribed []UnsubscribedAddress `json:"unsubscribed,omitempty"`
	// optedOut are categories the user left with an email's one-click
	// unsubscribe link (RFC 8058); honoured like spec.optOut on every
	// channel. Remove an entry to opt the user in again.
	// +optional
	// +listType=map
	// +listMapKey=category
	// +kubebuilder:validation:MaxItems=64
	OptedOut []LearnedOptOut `json:"optedOut,omitempty"`
}

// LearnedOptOut is a category the user opted out of outside the spec.
type LearnedOptOut struct {
	// +required
	// +kubebuilder:validation:MaxLength=63
	Category string `json:"category"`
	// reason, e.g. OneClickUnsubscribe.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// +optional
	Time metav1.Time `json:"time,omitempty"`
}

// UserPreference reasons.
const (
	ReasonInvalidTimeZone = "InvalidTimeZone"
	ReasonInvalidLocale   = "InvalidLocale"
)

// UserPreference is one user's contacts, opt-outs, quiet hours, locale and caps.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=upref,categories=herald
// +kubebuilder:printcolumn:name="Locale",type=string,JSONPath=`.spec.locale`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UserPreference struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec UserPreferenceSpec `json:"spec"`
	// +optional
	Status UserPreferenceStatus `json:"status,omitempty"`
}

// UserPreferenceList is a list of UserPreferences.
// +kubebuilder:object:root=true
type UserPreferenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserPreference `json:"items"`
}

func init() {
	SchemeBuilder.Register(&UserPreference{}, &UserPreferenceList{})
}
