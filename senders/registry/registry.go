// Package registry maps each provider type to its adapter: a static table,
// no init() registration. New builds a Sender; Validate runs only the
// adapter's config checks, without network, for the provider's Ready condition.
package registry

import (
	"fmt"
	"slices"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/apns"
	"github.com/herald-dev/herald/senders/fcm"
	heraldlog "github.com/herald-dev/herald/senders/log"
	"github.com/herald-dev/herald/senders/sendgrid"
	"github.com/herald-dev/herald/senders/smtp"
	"github.com/herald-dev/herald/senders/twilio"
	"github.com/herald-dev/herald/senders/webhook"
)

// Constructor builds a Sender from a provider's configuration.
type Constructor func(senders.ProviderConfig) (senders.Sender, error)

type adapter struct {
	validate func(senders.ProviderConfig) error
	build    Constructor
}

// entry ties an adapter's ConfigFrom and New together.
func entry[C any, S senders.Sender](configFrom func(senders.ProviderConfig) (C, error), newSender func(C) (S, error)) adapter {
	return adapter{
		validate: func(pc senders.ProviderConfig) error {
			_, err := configFrom(pc)
			return err
		},
		build: func(pc senders.ProviderConfig) (senders.Sender, error) {
			cfg, err := configFrom(pc)
			if err != nil {
				return nil, err
			}
			s, err := newSender(cfg)
			if err != nil {
				return nil, err // not s: a nil *T in an interface is not nil
			}
			return s, nil
		},
	}
}

var adapters = map[v1alpha1.ProviderType]adapter{
	v1alpha1.ProviderAPNs:     entry(apns.ConfigFrom, apns.New),
	v1alpha1.ProviderFCM:      entry(fcm.ConfigFrom, fcm.New),
	v1alpha1.ProviderTwilio:   entry(twilio.ConfigFrom, twilio.New),
	v1alpha1.ProviderSendGrid: entry(sendgrid.ConfigFrom, sendgrid.New),
	v1alpha1.ProviderSMTP:     entry(smtp.ConfigFrom, smtp.New),
	v1alpha1.ProviderWebhook:  entry(webhook.ConfigFrom, webhook.New),
	v1alpha1.ProviderLog:      entry(heraldlog.ConfigFrom, heraldlog.New),
}

// Types lists the provider types with an adapter, sorted.
func Types() []v1alpha1.ProviderType {
	out := make([]v1alpha1.ProviderType, 0, len(adapters))
	for t := range adapters {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func lookup(pc senders.ProviderConfig) (adapter, error) {
	if pc.Spec == nil {
		return adapter{}, senders.InvalidSpec("spec", "is missing")
	}
	a, ok := adapters[pc.Spec.Type]
	if !ok {
		return adapter{}, senders.InvalidSpec("spec.type", fmt.Sprintf("unknown provider type %q", pc.Spec.Type))
	}
	return a, nil
}

// New builds the Sender for pc's type. Configuration problems are
// *senders.ConfigError. Some Senders hold connections: one handed to the
// dispatcher (dispatch.Dispatcher.Ensure) is closed by it when replaced or
// removed; any other is closed with Close when no longer used.
func New(pc senders.ProviderConfig) (senders.Sender, error) {
	a, err := lookup(pc)
	if err != nil {
		return nil, err
	}
	return a.build(pc)
}

// Validate checks pc as New would, without building a Sender or touching the
// network. A nil result means the Secret and spec are usable; otherwise the
// *senders.ConfigError's Reason is the Ready condition's reason.
func Validate(pc senders.ProviderConfig) error {
	a, err := lookup(pc)
	if err != nil {
		return err
	}
	return a.validate(pc)
}

// Close releases a Sender's resources if it holds any; it is senders.Close.
func Close(s senders.Sender) error { return senders.Close(s) }
