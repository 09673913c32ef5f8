// Package v1alpha1 holds Herald's API: the notify.herald.dev/v1alpha1 kinds
// Notification, Template, ChannelProvider, ClusterChannelProvider and
// UserPreference.
//
// +kubebuilder:object:generate=true
// +groupName=notify.herald.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Herald kind.
	GroupVersion = schema.GroupVersion{Group: "notify.herald.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
