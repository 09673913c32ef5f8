package fake

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Callback is one request a fake posted back, as the real service posts
// receipts and events to the URL its customer configured.
type Callback struct {
	URL    string
	Header http.Header
	Body   []byte
	// Status is the answer (0 when the request failed: Err).
	Status int
	Err    error
}

// Poster posts a fake's callbacks, to loopback addresses only, and logs them.
type Poster struct {
	Log Log[Callback]

	once   sync.Once
	client *http.Client
	wg     sync.WaitGroup

	mu   sync.Mutex
	hold bool
	held []func()
}

// Hold keeps callbacks started with Go from being posted until Release:
// a test can let the receiver finish what it was doing first (a provider
// whose receipts come minutes later).
func (p *Poster) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = true
}

// Release posts the held callbacks, in order, and stops holding.
func (p *Poster) Release() {
	p.mu.Lock()
	held := p.held
	p.hold, p.held = false, nil
	p.mu.Unlock()
	for _, f := range held {
		p.Go(f)
	}
}

// Post sends body to u with header (a POST) and logs it.
func (p *Poster) Post(u string, header http.Header, body []byte) Callback {
	p.once.Do(func() { p.client = &http.Client{Timeout: 10 * time.Second} })
	c := Callback{URL: u, Header: header.Clone(), Body: body}
	defer func() { p.Log.Add(c) }()
	pu, err := url.Parse(u)
	if err != nil {
		c.Err = err
		return c
	}
	if ip := net.ParseIP(pu.Hostname()); ip == nil || !ip.IsLoopback() {
		c.Err = fmt.Errorf("fake callbacks go to loopback addresses only, not %q", pu.Host)
		return c
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		c.Err = err
		return c
	}
	req.Header = header.Clone()
	res, err := p.client.Do(req)
	if err != nil {
		c.Err = err
		return c
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	c.Status = res.StatusCode
	return c
}

// Go runs f (which posts) in the background; Wait waits for all.
func (p *Poster) Go(f func()) {
	p.mu.Lock()
	if p.hold {
		p.held = append(p.held, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go func() { defer p.wg.Done(); f() }()
}

// Wait waits for callbacks started with Go.
func (p *Poster) Wait() { p.wg.Wait() }

// Resend posts a logged callback again, byte for byte: a replay.
func (p *Poster) Resend(c Callback) Callback { return p.Post(c.URL, c.Header, c.Body) }
