package v1alpha1

// ReceiptsConfig asks a provider for delivery receipts and, for Twilio,
// inbound STOP/START messages, over Herald's inbound server.
// +kubebuilder:validation:XValidation:rule="!has(self.publicURL) || self.publicURL.startsWith('https://') || self.publicURL.startsWith('http://')",message="receipts.publicURL must be an http(s) URL"
type ReceiptsConfig struct {
	// publicURL is the inbound server as this provider reaches it, e.g.
	// https://herald.example.com; default: the manager's
	// --inbound-public-url. Without either, no receipts are asked for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	PublicURL string `json:"publicURL,omitempty"`
}

// ProviderHook is one inbound URL of a provider.
type ProviderHook struct {
	// name: status (Twilio StatusCallback, set on each send), messages
	// (Twilio "A message comes in"), events (SendGrid Event Webhook).
	// +required
	// +kubebuilder:validation:MaxLength=32
	Name string `json:"name"`
	// url to configure on the provider's side.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
}
