package fake

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Listen opens a listener on a free loopback port: every fake listens there,
// so nothing it serves is reachable from outside the machine.
func Listen() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}

// HTTP is a plain-HTTP loopback server. A fake embeds it for its URL, Addr
// and Close.
type HTTP struct {
	ln  net.Listener
	srv *http.Server
}

// ServeHTTP starts h on a free loopback port.
func ServeHTTP(h http.Handler) (*HTTP, error) {
	ln, err := Listen()
	if err != nil {
		return nil, err
	}
	s := &HTTP{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL, for spec.endpoint.
func (s *HTTP) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the listening address.
func (s *HTTP) Addr() string { return s.ln.Addr().String() }

// Close stops the server and drops open connections.
func (s *HTTP) Close() error {
	err := s.srv.Close()
	// Serve may not have taken the listener yet.
	_ = s.ln.Close()
	return err
}

// Apply carries out the part of f that every HTTP fake treats alike: it
// waits f.Latency, then drops the connection if f.Drop. It reports whether
// the handler should go on to answer; false means the request ends
// unanswered, because it was dropped or because the client, or done (the
// fake closing; nil for never), ended the wait.
func Apply(w http.ResponseWriter, r *http.Request, f Fault, done <-chan struct{}) bool {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		case <-done:
			return false
		}
	}
	if f.Drop {
		Drop(w)
		return false
	}
	return true
}

// Drop ends the request without an answer: over HTTP/1 it closes the
// connection; over HTTP/2, which cannot hand the connection over, it resets
// the stream (and does not return).
func Drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// SetRetryAfter sets h's Retry-After to f.RetryAfter in whole seconds,
// rounded up, when it is set.
func SetRetryAfter(h http.Header, f Fault) {
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
}

// WriteHTML answers with status and an HTML page (a Fault's Body), as a
// proxy or load balancer in front of the provider would.
func WriteHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, page)
}

// HTMLError is a proxy's error page for status, for Fault.Body.
func HTMLError(status int) string {
	return "<html><body><h1>" + strconv.Itoa(status) + " " + http.StatusText(status) + "</h1></body></html>\n"
}
