package inbound

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func start(t testing.TB, o Options, routes ...Route) string {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	s := New(o)
	for _, r := range routes {
		s.Add(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + s.Addr().String()
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestRejectionsLookAlike(t *testing.T) {
	base := start(t, Options{}, Route{Pattern: "POST /hooks/{name}", Source: "test", Handle: func(_ context.Context, r *Request) (Response, error) {
		if r.Header.Get("Authorization") != "Bearer ok" || r.PathValue("name") != "real" {
			return Response{}, ErrUnauthorized
		}
		return Response{Body: []byte("ok")}, nil
	}})
	code1, body1 := post(t, base+"/hooks/real", "{}")    // exists, no credentials
	code2, body2 := post(t, base+"/hooks/missing", "{}") // handler refuses an unknown name
	code3, body3 := post(t, base+"/nothing/here", "{}")  // no route at all
	if code1 != 401 || code1 != code2 || code2 != code3 || body1 != body2 || body2 != body3 {
		t.Fatalf("rejections differ: %d %q / %d %q / %d %q", code1, body1, code2, body2, code3, body3)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/real", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer ok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("authorized request: %d", res.StatusCode)
	}
}

func TestLimits(t *testing.T) {
	called := 0
	base := start(t, Options{MaxBodyBytes: 1024, RatePerSecond: 0.001, Burst: 3}, Route{Pattern: "POST /hooks/{name}", Source: "test",
		Limit:  func(r *http.Request) string { return r.PathValue("name") },
		Handle: func(context.Context, *Request) (Response, error) { called++; return Response{}, nil }})
	if code, _ := post(t, base+"/hooks/a", strings.Repeat("x", 1025)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	if called != 0 {
		t.Fatal("the handler saw an oversized body")
	}
	for i := 0; i < 2; i++ {
		if code, _ := post(t, base+"/hooks/a", "{}"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code, _ := post(t, base+"/hooks/a", "{}"); code != http.StatusTooManyRequests {
		t.Fatalf("request over the burst: %d", code)
	}
	// Another source has its own budget.
	if code, _ := post(t, base+"/hooks/b", "{}"); code != 200 {
		t.Fatalf("another source: %d", code)
	}
}

func TestSignedURLs(t *testing.T) {
	r, _ := http.NewRequest(http.MethodPost, "http://10.0.0.1:9443/providers/x?a=1", nil)
	got := SignedURLs("https://h.example.com/herald", r)
	want := []string{"https://h.example.com/providers/x?a=1", "https://h.example.com/herald/providers/x?a=1"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("signedURLs = %q, want %q", got, want)
	}
}
