package controller_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/policy"
	"github.com/herald-dev/herald/senders/fake"
	fakesendgrid "github.com/herald-dev/herald/senders/fake/sendgrid"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
	"github.com/herald-dev/herald/senders/sendgrid"
)

// withReceipts turns receipts on for a provider.
func withReceipts(s *v1alpha1.ChannelProviderSpec) { s.Receipts = &v1alpha1.ReceiptsConfig{} }

func hook(t *testing.T, ns, name, hookName string) string {
	t.Helper()
	var p v1alpha1.ChannelProvider
	if err := env.Client.Get(ctxT(), key(ns, name), &p); err != nil {
		t.Fatal(err)
	}
	for _, h := range p.Status.Hooks {
		if h.Name == hookName {
			return h.URL
		}
	}
	t.Fatalf("provider %s/%s shows no %s hook: %+v", ns, name, hookName, p.Status.Hooks)
	return ""
}

func smsNotif(ns, name string, rcpts ...v1alpha1.Recipient) *v1alpha1.Notification {
	n := notif(ns, name, rcpts...)
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelSMS}
	return n
}

func emailNotif(ns, name string, rcpts ...v1alpha1.Recipient) *v1alpha1.Notification {
	n := notif(ns, name, rcpts...)
	n.Spec.Channels = []v1alpha1.Channel{v1alpha1.ChannelEmail}
	return n
}

// waitDelivery waits until the Notification's only delivery is in state
// with reason, and returns the Notification.
func waitDelivery(t *testing.T, ns, name string, state v1alpha1.DeliveryState, reason string) *v1alpha1.Notification {
	t.Helper()
	var n *v1alpha1.Notification
	eventually(t, func() error {
		n = getNotif(t, ns, name)
		if len(n.Status.Deliveries) != 1 || n.Status.Deliveries[0].State != state || n.Status.Deliveries[0].Reason != reason {
			return errf("deliveries %s, want one %s/%s", deliveriesString(n), state, reason)
		}
		return nil
	})
	return n
}

// callback finds the logged callback whose form has every key and value of want.
func callback(t *testing.T, p *fake.Poster, want url.Values) fake.Callback {
	t.Helper()
	for _, c := range p.Log.All() {
		form, err := url.ParseQuery(string(c.Body))
		if err != nil {
			continue
		}
		ok := true
		for k := range want {
			if form.Get(k) != want.Get(k) {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
	t.Fatalf("no callback with %v among %d", want, p.Log.Len())
	return fake.Callback{}
}

// unchanged asserts that the Notification is not written again within a
// while (a flush, and then some).
func unchanged(t *testing.T, n *v1alpha1.Notification) {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	if now := getNotif(t, n.Namespace, n.Name); now.ResourceVersion != n.ResourceVersion {
		t.Fatalf("status written again: %s", deliveriesString(now))
	}
}

func TestTwilioReceipts(t *testing.T) {
	ns := namespace(t, "receipts-twilio")
	srv := twilioFake(t, ns, withReceipts)
	statusURL := hook(t, ns, "twilio", "status")
	if !strings.HasPrefix(statusURL, "http://"+inboundAddr+"/providers/namespaces/"+ns+"/twilio/") {
		t.Fatalf("status hook %q", statusURL)
	}
	user(t, ns, "alice", v1alpha1.UserPreferenceSpec{Phone: "+14155550101"}, nil)
	srv.PushStatus(faketwilio.Status{MessageStatus: "delivered"}, faketwilio.Status{MessageStatus: "undelivered", ErrorCode: "30003"})

	create(t, smsNotif(ns, "delivered", v1alpha1.Recipient{User: "alice"}))
	n := waitDelivery(t, ns, "delivered", v1alpha1.DeliveryDelivered, "")
	d := n.Status.Deliveries[0]
	if d.DeliveredTime == nil || d.SentTime == nil || d.ProviderMessageID == "" || n.Status.Phase != v1alpha1.PhaseSent ||
		n.Status.Summary.Delivered != 1 || n.Status.Summary.Sent != 1 {
		t.Fatalf("delivered: phase %s summary %+v delivery %+v", n.Status.Phase, n.Status.Summary, d)
	}

	create(t, smsNotif(ns, "undelivered", v1alpha1.Recipient{Phone: "+14155550102"}))
	u := waitDelivery(t, ns, "undelivered", v1alpha1.DeliveryFailed, "Twilio30003")
	if u.Status.Phase != v1alpha1.PhaseFailed || u.Status.Summary.Failed != 1 || u.Status.Summary.Sent != 0 {
		t.Fatalf("undelivered: phase %s summary %+v", u.Status.Phase, u.Status.Summary)
	}
	waitEvent(t, u, v1alpha1.ReasonUndelivered)
	noFullAddress(t, u, "+14155550102")

	// A replayed callback is recorded once: nothing is written again.
	cb := callback(t, &srv.Callbacks, url.Values{"MessageSid": {d.ProviderMessageID}, "MessageStatus": {"delivered"}})
	if again := srv.Callbacks.Resend(cb); again.Status != http.StatusNoContent {
		t.Fatalf("replay answered %d %v", again.Status, again.Err)
	}
	unchanged(t, n)

	// A forged one (the status changed, the signature kept) is refused
	// and records nothing.
	forged := bytes.Replace(cb.Body, []byte("MessageStatus=delivered"), []byte("MessageStatus=undelivered"), 1)
	if bad := srv.Callbacks.Post(cb.URL, cb.Header, forged); bad.Status != http.StatusUnauthorized {
		t.Fatalf("forged callback answered %d %v", bad.Status, bad.Err)
	}
	// Nor does one signed with another account's token.
	other := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Twilio-Signature": {faketwilio.Signature("ffffffffffffffffffffffffffffffff", cb.URL, mustQuery(t, forged))}}
	if bad := srv.Callbacks.Post(cb.URL, other, forged); bad.Status != http.StatusUnauthorized {
		t.Fatalf("callback signed with another token answered %d", bad.Status)
	}
	unchanged(t, n)
}

func mustQuery(t *testing.T, body []byte) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A receipt for a Notification that has finished (and so left the
// manager's cache) long before is still recorded.
func TestReceiptForFinishedNotification(t *testing.T) {
	ns := namespace(t, "receipts-late")
	srv := twilioFake(t, ns, withReceipts)
	srv.Callbacks.Hold()
	create(t, smsNotif(ns, "late", v1alpha1.Recipient{Phone: "+14155550103"}))
	n := waitDelivery(t, ns, "late", v1alpha1.DeliverySent, "")
	if n.Status.Phase != v1alpha1.PhaseSent {
		t.Fatalf("phase %s", n.Status.Phase)
	}
	// Finished: the manager's cache selects unfinished phases only, so the
	// receipt must be read and written through the API server. Give the
	// cache time to drop it.
	time.Sleep(300 * time.Millisecond)
	srv.Callbacks.Release()
	n = waitDelivery(t, ns, "late", v1alpha1.DeliveryDelivered, "")
	if n.Status.Summary.Delivered != 1 || n.Status.Phase != v1alpha1.PhaseSent {
		t.Fatalf("summary %+v phase %s", n.Status.Summary, n.Status.Phase)
	}
}

func TestTwilioStopAndStart(t *testing.T) {
	ns := namespace(t, "receipts-stop")
	other := namespace(t, "receipts-stop-other")
	srv := twilioFake(t, ns, withReceipts)
	messages := hook(t, ns, "twilio", "messages")
	const phone = "+14155550104"
	user(t, ns, "carol", v1alpha1.UserPreferenceSpec{Phone: phone}, nil)
	user(t, other, "carol", v1alpha1.UserPreferenceSpec{Phone: phone}, nil)
	hash := policy.HashToken(phone)
	unsubscribed := func(ns string) bool {
		var u v1alpha1.UserPreference
		if err := env.Client.Get(ctxT(), key(ns, "carol"), &u); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool {
			return a.AddressHash == hash && a.Channel == v1alpha1.ChannelSMS
		})
	}

	// Signed with another token: refused, nothing learned.
	bad := fake.Poster{}
	form := url.Values{"From": {phone}, "Body": {"STOP"}}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Twilio-Signature": {faketwilio.Signature("00000000000000000000000000000000", messages, form)}}
	if c := bad.Post(messages, h, []byte(form.Encode())); c.Status != http.StatusUnauthorized {
		t.Fatalf("forged STOP answered %d %v", c.Status, c.Err)
	}

	if c := srv.Inbound(messages, phone, "+14155550199", " Stop "); c.Status != http.StatusOK {
		t.Fatalf("STOP answered %d %v", c.Status, c.Err)
	}
	eventually(t, func() error {
		if !unsubscribed(ns) {
			return errf("STOP not learned")
		}
		return nil
	})
	if unsubscribed(other) {
		t.Fatal("a namespaced provider's STOP reached a user in another namespace")
	}
	create(t, smsNotif(ns, "after-stop", v1alpha1.Recipient{User: "carol"}))
	waitDelivery(t, ns, "after-stop", v1alpha1.DeliverySuppressed, v1alpha1.ReasonUnsubscribed)

	if c := srv.Inbound(messages, phone, "+14155550199", "START"); c.Status != http.StatusOK {
		t.Fatalf("START answered %d %v", c.Status, c.Err)
	}
	eventually(t, func() error {
		if unsubscribed(ns) {
			return errf("START not learned")
		}
		return nil
	})
	create(t, smsNotif(ns, "after-start", v1alpha1.Recipient{User: "carol"}))
	waitDelivery(t, ns, "after-start", v1alpha1.DeliveryDelivered, "")
}

func TestSendGridReceipts(t *testing.T) {
	ns := namespace(t, "receipts-sendgrid")
	srv, err := fakesendgrid.New(fakesendgrid.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	spec := v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderSendGrid, Default: true, Endpoint: srv.URL(),
		SendGrid: &v1alpha1.SendGridConfig{From: v1alpha1.EmailAddress{Email: "herald@example.com"}}}
	withReceipts(&spec)
	provider(t, ns, "sendgrid", spec, map[string][]byte{sendgrid.KeyAPIKey: []byte(srv.APIKey()),
		sendgrid.KeyWebhookVerificationKey: []byte(srv.VerificationKey())})
	srv.SetEventWebhook(hook(t, ns, "sendgrid", "events"))

	for _, tc := range []struct {
		user   string
		event  fakesendgrid.Event
		state  v1alpha1.DeliveryState
		reason string
		learn  string
	}{
		{"dora", fakesendgrid.Event{Event: "delivered"}, v1alpha1.DeliveryDelivered, "", ""},
		{"erin", fakesendgrid.Event{Event: "bounce", Type: "bounce", Reason: "550 5.1.1 no such user"}, v1alpha1.DeliveryFailed, v1alpha1.ReasonBounced, v1alpha1.ReasonBounced},
		{"fred", fakesendgrid.Event{Event: "spamreport"}, v1alpha1.DeliveryDelivered, "", v1alpha1.ReasonSpamReport},
		{"gina", fakesendgrid.Event{Event: "unsubscribe"}, v1alpha1.DeliveryDelivered, "", v1alpha1.ReasonUnsubscribed},
	} {
		email := tc.user + "@example.org"
		user(t, ns, tc.user, v1alpha1.UserPreferenceSpec{Email: email}, nil)
		srv.PushEvent(tc.event)
		create(t, emailNotif(ns, tc.user, v1alpha1.Recipient{User: tc.user}))
		waitDelivery(t, ns, tc.user, tc.state, tc.reason)
		var u v1alpha1.UserPreference
		eventually(t, func() error {
			if err := env.Client.Get(ctxT(), key(ns, tc.user), &u); err != nil {
				return err
			}
			i := slices.IndexFunc(u.Status.Unsubscribed, func(a v1alpha1.UnsubscribedAddress) bool { return a.AddressHash == policy.HashToken(email) })
			switch {
			case tc.learn == "" && i >= 0:
				return errf("%s learned %+v", tc.user, u.Status.Unsubscribed[i])
			case tc.learn != "" && (i < 0 || u.Status.Unsubscribed[i].Reason != tc.learn):
				return errf("%s: unsubscribed %+v, want %s", tc.user, u.Status.Unsubscribed, tc.learn)
			}
			return nil
		})
	}
	// What was learned is honoured.
	create(t, emailNotif(ns, "erin-again", v1alpha1.Recipient{User: "erin"}))
	waitDelivery(t, ns, "erin-again", v1alpha1.DeliverySuppressed, v1alpha1.ReasonUnsubscribed)

	// A replayed batch changes nothing; a tampered one is refused.
	dora := getNotif(t, ns, "dora")
	var batch fake.Callback
	for _, c := range srv.Callbacks.Log.All() {
		if bytes.Contains(c.Body, []byte(`"herald_notification":"`+ns+`/dora"`)) {
			batch = c
		}
	}
	if batch.URL == "" {
		t.Fatal("no event batch for dora")
	}
	if c := srv.Callbacks.Resend(batch); c.Status != http.StatusOK {
		t.Fatalf("replay answered %d %v", c.Status, c.Err)
	}
	if c := srv.Callbacks.Post(batch.URL, batch.Header, bytes.Replace(batch.Body, []byte(`"delivered"`), []byte(`"dropped"`), 1)); c.Status != http.StatusUnauthorized {
		t.Fatalf("tampered batch answered %d", c.Status)
	}
	unchanged(t, dora)
}

// Receipts arriving together for one Notification share a status write.
func TestReceiptsShareAWrite(t *testing.T) {
	ns := namespace(t, "receipts-batch")
	srv := twilioFake(t, ns, withReceipts)
	srv.Callbacks.Hold()
	const n = 8
	var rcpts []v1alpha1.Recipient
	for i := range n {
		rcpts = append(rcpts, v1alpha1.Recipient{Phone: fmt.Sprintf("+1415555020%d", i)})
	}
	create(t, smsNotif(ns, "batch", rcpts...))
	waitFinished(t, ns, "batch", v1alpha1.PhaseSent)
	w := watchStatus(t, ns, "batch")
	srv.Callbacks.Release()
	eventually(t, func() error {
		if s := getNotif(t, ns, "batch").Status.Summary; s.Delivered != n {
			return errf("summary %+v", s)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	writes, _ := w.stop()
	t.Logf("%d delivered receipts took %d status writes", n, writes)
	if writes < 1 || writes > n/2 {
		t.Fatalf("%d receipts took %d status writes, want them batched (at most %d)", n, writes, n/2)
	}
}
