package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	whfake "github.com/herald-dev/herald/senders/fake/webhook"
)

func TestSignatureChecks(t *testing.T) {
	key := []byte("k")
	srv, err := whfake.New(whfake.Options{HMACKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	send := func(ts, sig string) int {
		req, _ := http.NewRequest("POST", srv.URL()+"/hook", strings.NewReader(`{"text":"x"}`))
		req.Header.Set("X-Herald-Timestamp", ts)
		req.Header.Set("X-Herald-Signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	sign := func(ts string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(ts + `.{"text":"x"}`))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if s := send(now, sign(now)); s != 200 {
		t.Errorf("good signature: %d", s)
	}
	if s := send(now, sign(old)); s != 401 {
		t.Errorf("bad signature: %d", s)
	}
	if s := send(old, sign(old)); s != 401 {
		t.Errorf("stale timestamp: %d", s)
	}
	if s := send("", ""); s != 401 {
		t.Errorf("unsigned: %d", s)
	}
	if n := len(srv.Accepted()); n != 1 {
		t.Errorf("accepted %d", n)
	}
}
