package inbound

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/receipt"
	faketwilio "github.com/herald-dev/herald/senders/fake/twilio"
)

// BenchmarkTwilioStatusCallback is one signed status callback through the
// server: limits, signature, parsing, buffering (the Lookup is in memory,
// as the manager's cache and Secret cache make it).
func BenchmarkTwilioStatusCallback(b *testing.B) {
	base, _, _ := providersServer(b, Options{RatePerSecond: 1e9, Burst: 1 << 30})
	path := ProviderPath("team", "sms", HookStatus)
	query := "?" + receipt.CallbackQuery("team", "n1", "uid-1", "m1").Encode()
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+14155550100"}}
	sig := faketwilio.Signature(token, "https://sms.example.com/herald"+path+query, form)
	body := form.Encode()
	c := &http.Client{}
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, base+path+query, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		res, err := c.Do(req)
		if err != nil || res.StatusCode != http.StatusNoContent {
			b.Fatalf("%v %v", res, err)
		}
		res.Body.Close()
	}
}
