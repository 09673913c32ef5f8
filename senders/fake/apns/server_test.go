package apns_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/senders/fake"
	fakeapns "github.com/herald-dev/herald/senders/fake/apns"
)

func client(t *testing.T, s *fakeapns.Server, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Fatal("CAPEM")
	}
	var p http.Protocols
	p.SetHTTP2(h2)
	p.SetHTTP1(!h2)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p, ForceAttemptHTTP2: h2,
	}}
}

func TestWire(t *testing.T) {
	s, err := fakeapns.New(fakeapns.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := strings.Repeat("0f", 32)
	post := func(c *http.Client, auth string) (*http.Response, map[string]any, error) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/3/device/"+tok, bytes.NewReader([]byte(`{"aps":{"alert":"hi"}}`)))
		req.Header.Set("apns-topic", "dev.herald.app")
		if auth != "" {
			req.Header.Set("authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp, m, nil
	}

	if _, _, err := post(client(t, s, false), ""); err == nil {
		t.Error("HTTP/1.1 client: want an ALPN failure, as against Apple")
	}
	c := client(t, s, true)
	resp, body, err := post(c, "")
	if err != nil || resp.StatusCode != 403 || body["reason"] != "MissingProviderToken" || resp.Header.Get("apns-id") == "" {
		t.Errorf("no auth: %v %v %v", resp, body, err)
	}
	resp, body, err = post(c, "bearer a.b.c")
	if err != nil || resp.StatusCode != 403 || body["reason"] != "InvalidProviderToken" {
		t.Errorf("bad jwt: %v %v %v", resp, body, err)
	}

	// A scripted fault answers once authentication passes.
	s.Script.Push(fake.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	resp, _, _ = post(c, "")
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("auth first: %v", resp)
	}
	s.Script.Push(fake.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	crt, key, _ := s.NewClientCert("dev.herald.app")
	cert, _ := tls.X509KeyPair(crt, key)
	c = client(t, s, true)
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	resp, body, err = post(c, "")
	if err != nil || resp.StatusCode != 429 || body["reason"] != "TooManyRequests" || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("scripted 429: %v %v %v", resp, body, err)
	}
	s.Unregister(tok)
	resp, body, err = post(c, "")
	if err != nil || resp.StatusCode != 410 || body["reason"] != "Unregistered" || body["timestamp"] == nil {
		t.Errorf("unregistered: %v %v %v", resp, body, err)
	}
	got := s.Received.All()
	if len(got) != 5 || got[4].Auth != "certificate" || got[4].Payload["aps"] == nil {
		t.Errorf("received: %+v", got)
	}
}
