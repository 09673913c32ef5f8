package twilio_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/herald-dev/herald/senders/fake"
	twiliofake "github.com/herald-dev/herald/senders/fake/twilio"
)

func post(t *testing.T, srv *twiliofake.Server, user, pass string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL()+"/2010-04-01/Accounts/"+srv.AccountSID()+"/Messages.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body, res.Header
}

func TestWireProtocol(t *testing.T) {
	srv, err := twiliofake.New(twiliofake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ok := url.Values{"To": {"+14155550100"}, "From": {"+14155550199"}, "Body": {"hi"}}

	status, body, _ := post(t, srv, srv.AccountSID(), srv.AuthToken(), ok)
	if status != 201 || body["status"] != "queued" || !strings.HasPrefix(body["sid"].(string), "SM") || body["to"] != "+14155550100" {
		t.Errorf("create: %d %v", status, body)
	}
	if status, body, _ = post(t, srv, srv.AccountSID(), "wrong", ok); status != 401 || body["code"] != float64(20003) {
		t.Errorf("auth: %d %v", status, body)
	}
	bad := url.Values{"To": {"555"}, "From": {"+14155550199"}, "Body": {"hi"}}
	if status, body, _ = post(t, srv, srv.AccountSID(), srv.AuthToken(), bad); status != 400 || body["code"] != float64(21211) {
		t.Errorf("invalid number: %d %v", status, body)
	}
	noFrom := url.Values{"To": {"+14155550100"}, "Body": {"hi"}}
	if status, body, _ = post(t, srv, srv.AccountSID(), srv.AuthToken(), noFrom); status != 400 || body["code"] != float64(21603) {
		t.Errorf("no from: %d %v", status, body)
	}
	srv.Script.Push(fake.Fault{Reason: "20429", RetryAfter: 2e9})
	status, body, h := post(t, srv, srv.AccountSID(), srv.AuthToken(), ok)
	if status != 429 || body["code"] != float64(20429) || h.Get("Retry-After") != "2" || body["more_info"] == "" {
		t.Errorf("fault: %d %v %v", status, body, h)
	}
	if n := len(srv.Accepted()); n != 1 || srv.Received.Len() != 5 {
		t.Errorf("accepted %d of %d", n, srv.Received.Len())
	}
}
