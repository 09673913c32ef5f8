package fake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/herald-dev/herald/senders/fake"
)

// serve answers every request with script's next fault, carried out the way
// the HTTP fakes do, or 200 "ok".
func serve(t *testing.T, script *fake.Script) *fake.HTTP {
	t.Helper()
	srv, err := fake.ServeHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := script.Next()
		if !fake.Apply(w, r, f, nil) {
			return
		}
		fake.SetRetryAfter(w.Header(), f)
		switch {
		case f.Body != "":
			fake.WriteHTML(w, f.Status, f.Body)
		case f.Status != 0:
			w.WriteHeader(f.Status)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestFaultsOverHTTP(t *testing.T) {
	script := fake.NewScript(1)
	srv := serve(t, script)
	get := func(ctx context.Context) (*http.Response, string, error) {
		// POST, as to a provider: the client does not retry it on a new connection.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/x", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b), nil
	}

	if res, body, err := get(context.Background()); err != nil || res.StatusCode != 200 || body != "ok" {
		t.Fatalf("success: %v %v %q", res, err, body)
	}

	script.Push(fake.Fault{Status: 503, RetryAfter: 1500 * time.Millisecond, Body: fake.HTMLError(503)})
	res, body, err := get(context.Background())
	if err != nil || res.StatusCode != 503 || res.Header.Get("Retry-After") != "2" ||
		res.Header.Get("Content-Type") != "text/html; charset=utf-8" || body != fake.HTMLError(503) {
		t.Fatalf("proxy page: %v %v %q", res, err, body)
	}

	script.Push(fake.Fault{Drop: true})
	if _, _, err := get(context.Background()); err == nil {
		t.Fatal("dropped connection answered")
	}

	script.Push(fake.Fault{Latency: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("latency: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("latency was not cut short by the client")
	}
	if (fake.Fault{Body: "x"}).OK() {
		t.Fatal("a fault with only a Body is a success")
	}
}
