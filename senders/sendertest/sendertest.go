// Package sendertest has what the adapters' tests share: starting a
// loopback fake and building a Sender through its ConfigFrom and New, as
// senders/registry does, each torn down when the test ends.
package sendertest

import (
	"testing"

	"github.com/herald-dev/herald/senders"
	"github.com/herald-dev/herald/senders/egress"
)

// Build runs configFrom and then newSender on pc, failing t on either
// error, and closes the Sender (if it holds anything) when t ends. Without
// an egress policy in pc it allows loopback, where the fakes listen.
func Build[C any, S senders.Sender](t testing.TB, configFrom func(senders.ProviderConfig) (C, error), newSender func(C) (S, error), pc senders.ProviderConfig) S {
	t.Helper()
	if pc.Egress == nil {
		pc.Egress = egress.Loopback()
	}
	cfg, err := configFrom(pc)
	if err != nil {
		t.Fatalf("ConfigFrom: %v", err)
	}
	s, err := newSender(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = senders.Close(s) })
	return s
}

// Fake starts a fake with newFake(opts), failing t on error, and closes it
// when t ends.
func Fake[O any, F interface{ Close() error }](t testing.TB, newFake func(O) (F, error), opts O) F {
	t.Helper()
	f, err := newFake(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}
