package sendgrid_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	sgfake "github.com/herald-dev/herald/senders/fake/sendgrid"
)

func TestWireProtocol(t *testing.T) {
	srv, err := sgfake.New(sgfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	send := func(key, body string) (int, http.Header, string) {
		req, _ := http.NewRequest("POST", srv.URL()+"/v3/mail/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	good := `{"personalizations":[{"to":[{"email":"a@example.com"}]}],"from":{"email":"f@example.com"},"subject":"s","content":[{"type":"text/plain","value":"t"},{"type":"text/html","value":"<p>t</p>"}]}`
	if status, h, _ := send(srv.APIKey(), good); status != 202 || h.Get("X-Message-Id") == "" {
		t.Errorf("send: %d %v", status, h)
	}
	if status, _, body := send("nope", good); status != 401 || !strings.Contains(body, `"errors"`) {
		t.Errorf("auth: %d %s", status, body)
	}
	bad := `{"personalizations":[{"to":[{"email":"not-an-address"}]}],"from":{"email":"f@example.com"},"content":[{"type":"text/html","value":"h"},{"type":"text/plain","value":"t"}]}`
	status, _, body := send(srv.APIKey(), bad)
	for _, want := range []string{"personalizations.0.to.0.email", `"field":"subject"`, "text/plain must be first"} {
		if status != 400 || !strings.Contains(body, want) {
			t.Errorf("validation: %d %s lacks %s", status, body, want)
		}
	}
	if got := srv.Accepted(); len(got) != 1 || got[0].Mail.Personalizations[0].To[0].Email != "a@example.com" {
		t.Errorf("accepted %+v", got)
	}
}
