// Package inbound is Herald's one HTTP endpoint for the outside world:
// providers' receipts, STOP replies, Receivers' events and one-click
// unsubscribes. Every replica serves it (nothing here needs the leader).
// Each source authenticates its own way (a provider's signature, a
// Receiver's token or HMAC, a signed link); the server adds what all share:
// a body limit, a rate limit per source, and one answer for every rejected
// request, so a caller cannot learn whether a path exists.
package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Options configure the server; the manager binds each to a flag.
type Options struct {
	// Addr is where the server listens ("0" or "" disables it).
	Addr string
	// CertDir holds tls.crt and tls.key (a mounted Secret, reloaded when it
	// changes); empty serves plain HTTP, for behind an Ingress or a mesh
	// that terminates TLS.
	CertDir string
	// PublicURL is how the outside reaches the server (scheme, host and
	// any path prefix the Ingress keeps): the base of every URL Herald hands
	// out (Twilio StatusCallback, List-Unsubscribe, Receivers' status).
	PublicURL string
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// RatePerSecond and Burst bound requests per source (a provider, a
	// Receiver, the unsubscribe links) and, together, unknown paths.
	RatePerSecond float64
	Burst         int
}

// DefaultMaxBodyBytes is Options.MaxBodyBytes's default: far above an
// Alertmanager group or a SendGrid batch, far below what hurts.
const DefaultMaxBodyBytes = 1 << 20

// Request is what a Handler sees: the body already read within the limit.
type Request struct {
	*http.Request
	Body []byte
	// SignedURLs are the URLs the caller may have signed (Twilio signs
	// the full URL it called): PublicURL's origin with the request URI,
	// and with PublicURL's path prefix added when an Ingress stripped it.
	SignedURLs []string
}

// Response is a Handler's answer to an accepted request.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Handler authenticates and handles one source's requests. It returns
// ErrUnauthorized (wrapped or not) for anything it will not say more about.
type Handler func(ctx context.Context, r *Request) (Response, error)

// Route is one source's path pattern (http.ServeMux syntax, method
// included), its handler and the key its rate limit is kept under
// (computed from the request, e.g. the Receiver's namespace/name).
type Route struct {
	Pattern string
	Source  string // metrics label: twilio, sendgrid, receiver, unsubscribe
	Limit   func(*http.Request) string
	Handle  Handler
}

// ErrUnauthorized: the request is refused without saying why.
var ErrUnauthorized = errors.New("unauthorized")

// BadRequest is a refusal after authentication: the caller is who it
// claims, so it may learn what is wrong.
type BadRequest struct{ Reason string }

func (e *BadRequest) Error() string { return e.Reason }

// Server is the inbound HTTP server; it is a manager Runnable that runs on
// every replica.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	addr     net.Addr
	ready    chan struct{}
}

// New returns a server with no routes; Add them before Start.
func New(o Options) *Server {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.RatePerSecond <= 0 {
		o.RatePerSecond = 50
	}
	if o.Burst <= 0 {
		o.Burst = 100
	}
	s := &Server{opts: o, mux: http.NewServeMux(), limiters: map[string]*rate.Limiter{}, ready: make(chan struct{})}
	s.mux.Handle("/", s.wrap(Route{Source: "unknown", Handle: func(context.Context, *Request) (Response, error) {
		return Response{}, ErrUnauthorized
	}}))
	return s
}

// Add registers a route.
func (s *Server) Add(r Route) { s.mux.Handle(r.Pattern, s.wrap(r)) }

// URL is PublicURL joined with path (which starts with "/").
func (s *Server) URL(path string) string { return JoinURL(s.opts.PublicURL, path) }

// JoinURL is base (a public URL, maybe with a path prefix) joined with path;
// "" when base is empty.
func JoinURL(base, path string) string {
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + path
}

// NeedLeaderElection is false: every replica receives.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, once it does (tests); nil
// when it could not listen.
func (s *Server) Addr() net.Addr {
	<-s.ready
	return s.addr
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	l := log.FromContext(ctx).WithName("inbound")
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		close(s.ready) // Addr answers nil
		return fmt.Errorf("inbound server: %w", err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
	if s.opts.CertDir != "" {
		cw, err := certwatcher.New(filepath.Join(s.opts.CertDir, "tls.crt"), filepath.Join(s.opts.CertDir, "tls.key"))
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("inbound server certificate: %w", err)
		}
		go func() { _ = cw.Start(ctx) }()
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: cw.GetCertificate, MinVersion: tls.VersionTLS12})
	}
	l.Info("serving", "addr", s.addr.String(), "tls", s.opts.CertDir != "", "publicURL", s.opts.PublicURL)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

func (s *Server) limiter(key string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[key]
	if l == nil {
		if len(s.limiters) > 10000 {
			// Keys come from paths: bound the memory a caller inventing
			// names could take. Dropping them all only forgives bursts.
			clear(s.limiters)
		}
		l = rate.NewLimiter(rate.Limit(s.opts.RatePerSecond), s.opts.Burst)
		s.limiters[key] = l
	}
	return l
}

// wrap applies what every route shares: rate limit, body limit, the
// uniform rejection, metrics.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		key := rt.Source
		if rt.Limit != nil {
			key += "/" + rt.Limit(hr)
		}
		if !s.limiter(key).Allow() {
			observe(rt.Source, "rate_limited")
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, s.opts.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				observe(rt.Source, "too_large")
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			observe(rt.Source, "bad_request")
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
			return
		}
		req := &Request{Request: hr, Body: body, SignedURLs: SignedURLs(s.opts.PublicURL, hr)}
		res, err := rt.Handle(hr.Context(), req)
		var bad *BadRequest
		switch {
		case err == nil:
		case errors.As(err, &bad):
			observe(rt.Source, "bad_request")
			http.Error(w, bad.Reason, http.StatusBadRequest)
			return
		case errors.Is(err, ErrUnauthorized):
			observe(rt.Source, "unauthorized")
			unauthorized(w)
			return
		default:
			// Ours (the API server is unreachable): the caller retries.
			log.FromContext(hr.Context()).WithName("inbound").Error(err, "handling a request", "source", rt.Source)
			observe(rt.Source, "error")
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		observe(rt.Source, "accepted")
		if res.Status == 0 {
			res.Status = http.StatusOK
		}
		if res.ContentType != "" {
			w.Header().Set("Content-Type", res.ContentType)
		}
		w.WriteHeader(res.Status)
		_, _ = w.Write(res.Body)
	})
}

// unauthorized is the one answer to every refused request.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, "unauthorized\n")
}

// SignedURLs are the URLs a caller may have signed for r, given the public
// URL it was told (see Request.SignedURLs).
func SignedURLs(publicURL string, r *http.Request) []string {
	pub, err := url.Parse(publicURL)
	if err != nil || pub.Host == "" {
		return nil
	}
	origin := pub.Scheme + "://" + pub.Host
	urls := []string{origin + r.URL.RequestURI()}
	if p := strings.TrimSuffix(pub.Path, "/"); p != "" && !strings.HasPrefix(r.URL.Path, p+"/") {
		urls = append(urls, origin+p+r.URL.RequestURI())
	}
	return urls
}
