package inbound

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"k8s.io/utils/clock"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/receipt"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
)

const token = "0123456789abcdef0123456789abcdef"

// providersServer serves Providers whose Lookup knows one Twilio provider,
// team/sms, with its own public URL, and one SendGrid provider, team/mail.
func providersServer(t testing.TB, o Options) (base string, got func() []receipt.Receipt, keywords func() []string) {
	t.Helper()
	var mu sync.Mutex
	var rs []receipt.Receipt
	var kws []string
	p := &Providers{
		Lookup: func(_ context.Context, ns, name string) (ProviderInfo, error) {
			switch ns + "/" + name {
			case "team/sms":
				return ProviderInfo{Type: v1alpha1.ProviderTwilio, Secret: map[string][]byte{"authToken": []byte(token)}, PublicURL: "https://sms.example.com/herald"}, nil
			case "team/mail":
				return ProviderInfo{Type: v1alpha1.ProviderSendGrid, Secret: map[string][]byte{}}, nil
			}
			return ProviderInfo{}, ErrUnauthorized
		},
		Receipts: func(r []receipt.Receipt) { mu.Lock(); rs = append(rs, r...); mu.Unlock() },
		Keyword: func(_ context.Context, ns, phone string, k receipt.Keyword) error {
			mu.Lock()
			kws = append(kws, ns+" "+phone)
			mu.Unlock()
			return nil
		},
		Clock: clock.RealClock{},
	}
	o.PublicURL = "https://herald.example.com"
	base = start(t, o, p.Routes()...)
	return base, func() []receipt.Receipt { mu.Lock(); defer mu.Unlock(); return append([]receipt.Receipt(nil), rs...) },
		func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), kws...) }
}

func postForm(t *testing.T, u string, form url.Values, sig string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestTwilioHooks(t *testing.T) {
	base, got, keywords := providersServer(t, Options{})
	path := ProviderPath("team", "sms", HookStatus)
	delivered := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+14155550100"}}
	query := "?" + receipt.CallbackQuery("team", "n1", "uid-1", "m1").Encode()
	other := "?" + receipt.CallbackQuery("elsewhere", "n1", "uid-1", "m1").Encode()

	// Twilio signs the URL it was given: the provider's own public URL.
	if code := postForm(t, base+path+query, delivered, faketwilio.Signature(token, "https://sms.example.com/herald"+path+query, delivered)); code != http.StatusNoContent {
		t.Fatalf("signed with the provider's public URL: %d", code)
	}
	if rs := got(); len(rs) != 1 || rs[0].Via != "ChannelProvider/sms" || rs[0].State != v1alpha1.DeliveryDelivered || rs[0].Notification.Name != "n1" {
		t.Fatalf("receipts %+v", rs)
	}
	// Signed for another URL (the path of another provider): refused.
	if code := postForm(t, base+path+query, delivered, faketwilio.Signature(token, "https://sms.example.com/herald/providers/namespaces/team/x/status"+query, delivered)); code != http.StatusUnauthorized {
		t.Fatalf("signed for another URL: %d", code)
	}
	// A namespaced provider's signature says nothing about another namespace.
	if code := postForm(t, base+path+other, delivered, faketwilio.Signature(token, "https://herald.example.com"+path+other, delivered)); code != http.StatusNoContent {
		t.Fatalf("other namespace: %d", code)
	}
	if rs := got(); len(rs) != 1 {
		t.Fatalf("a receipt for another namespace was taken: %+v", rs[1:])
	}
	// The SendGrid provider's path does not take Twilio's requests.
	mail := ProviderPath("team", "mail", HookStatus)
	if code := postForm(t, base+mail+query, delivered, faketwilio.Signature(token, "https://herald.example.com"+mail+query, delivered)); code != http.StatusUnauthorized {
		t.Fatalf("a Twilio callback to a SendGrid provider: %d", code)
	}

	msgs := ProviderPath("team", "sms", HookMessages)
	stop := url.Values{"From": {"+14155550100"}, "Body": {"stop"}}
	if code := postForm(t, base+msgs, stop, faketwilio.Signature(token, "https://herald.example.com"+msgs, stop)); code != http.StatusOK {
		t.Fatalf("STOP: %d", code)
	}
	hello := url.Values{"From": {"+14155550100"}, "Body": {"hello"}}
	if code := postForm(t, base+msgs, hello, faketwilio.Signature(token, "https://herald.example.com"+msgs, hello)); code != http.StatusOK {
		t.Fatalf("another text: %d", code)
	}
	if k := keywords(); len(k) != 1 || k[0] != "team +14155550100" {
		t.Fatalf("keywords %v", k)
	}
}
