package v1alpha1

// Delivery reasons that providers' receipts give (docs/receipts.md). A
// receipt moves a Sent delivery to Delivered, or to Failed with one of
// these; the learning ones are also written to the user's status.
const (
	// ReasonUndelivered: the provider accepted the message but could not
	// deliver it (Twilio undelivered/failed; the message names the
	// provider's error code).
	ReasonUndelivered = "Undelivered"
	// ReasonBounced: the receiving mail server refused the message for good
	// (SendGrid bounce); the address is learned as unsubscribed.
	ReasonBounced = "Bounced"
	// ReasonDropped: the provider did not send it at all (SendGrid dropped:
	// a suppression list, an invalid address).
	ReasonDropped = "Dropped"
	// ReasonSpamReport: the recipient marked the message as spam; the
	// address is learned as unsubscribed.
	ReasonSpamReport = "SpamReport"
	// ReasonOneClickUnsubscribe: the recipient used the List-Unsubscribe
	// link of an email (RFC 8058) to opt out of its category.
	ReasonOneClickUnsubscribe = "OneClickUnsubscribe"
)
