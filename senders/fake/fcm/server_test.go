package fcm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/herald-dev/herald/senders/fake"
	fakefcm "github.com/herald-dev/herald/senders/fake/fcm"
)

func TestWire(t *testing.T) {
	s, err := fakefcm.New(fakefcm.Options{ProjectID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send := func(bearer string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/projects/p/messages:send",
			bytes.NewReader([]byte(`{"message":{"token":"abcdefghijklmnopqrstuvwxyz0123456789","notification":{"title":"t"}}}`)))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if code, body := send(""); code != 401 || body["error"].(map[string]any)["status"] != "UNAUTHENTICATED" {
		t.Errorf("no token: %d %v", code, body)
	}
	resp, err := http.PostForm(s.TokenURL(), map[string][]string{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"e30.e30.AAAA"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("forged assertion: status %d", resp.StatusCode)
	}

	s.Script.Push(fake.Fault{Reason: "UNREGISTERED"})
	// The scripted fault answers once authentication passes; without a
	// token the request fails first and consumes it, as the order at Google.
	code, body := send("")
	if code != 401 {
		t.Errorf("want auth checked before faults, got %d %v", code, body)
	}
	if s.Received.Len() != 2 {
		t.Errorf("received %d", s.Received.Len())
	}
}
