package senders_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herald-dev/herald/senders"
)

// Every answer is read through the limit, whoever reads it: exactly the
// limit passes, one byte more fails.
func TestLimitedBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := senders.MaxResponseBytes
		if r.URL.Path == "/big" {
			n++
		}
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	}))
	defer srv.Close()
	c := &http.Client{Transport: senders.Limited(http.DefaultTransport)}
	for path, wantErr := range map[string]bool{"/fits": false, "/big": true} {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if got := errors.Is(err, senders.ErrResponseTooLarge); got != wantErr {
			t.Errorf("%s: read %d bytes, err %v; want too-large %v", path, len(b), err, wantErr)
		}
		if len(b) > senders.MaxResponseBytes {
			t.Errorf("%s: read %d bytes, more than the limit", path, len(b))
		}
	}
}
