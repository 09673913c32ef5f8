// Package smtp sends email through an SMTP relay with go-mail: STARTTLS (or
// implicit TLS on port 465) before any credentials, AUTH PLAIN or LOGIN,
// multipart text and HTML, and a Message-ID derived from the Herald message
// id so a resend after a crash folds into the first in the inbox.
//
// Connections are pooled. A send over a fresh connection costs a TCP
// connect, the greeting, EHLO, STARTTLS with its handshake, EHLO again and
// AUTH — six round trips before MAIL FROM — so a Sender keeps a few idle,
// authenticated connections (MaxIdle) and reuses them for a while
// (IdleTimeout) and for a number of messages (MaxMessagesPerConn), as relays
// such as SES, Postmark and Gmail expect from a submission client. The
// dispatcher decides concurrency; the pool only caches what it leaves idle.
// A pooled connection the server has dropped fails its NOOP check before
// anything is sent, and the message goes out on a fresh one.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"net/textproto"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// Secret keys, both optional.
const (
	KeyUsername = "username"
	KeyPassword = "password"
)

// DefaultPort is the submission port.
const DefaultPort = 587

// Security is how the connection to the relay is protected.
type Security string

const (
	// StartTLS upgrades a plain connection with STARTTLS, which the server must offer.
	StartTLS Security = "starttls"
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465).
	ImplicitTLS Security = "tls"
	// NoTLS sends in the clear; credentials are refused with it.
	NoTLS Security = "none"
)

// Pool defaults.
const (
	DefaultMaxIdle            = 4
	DefaultIdleTimeout        = 30 * time.Second
	DefaultMaxMessagesPerConn = 100
)

// Config is everything a Sender needs.
type Config struct {
	// Dial makes connections (see senders.GuardedDial): nil is the default
	// egress policy.
	Dial     senders.DialFunc
	Host     string
	Port     int
	From     netmail.Address
	Security Security
	// Username and Password, when set, authenticate with AUTH PLAIN or LOGIN.
	Username string
	Password string
	// TLS verifies the server; ServerName defaults to Host.
	TLS     *tls.Config
	Timeout time.Duration
	// HELO is the name this client gives in EHLO; empty means the hostname.
	HELO string

	MaxIdle            int
	IdleTimeout        time.Duration
	MaxMessagesPerConn int
}

// String keeps credentials out of logs that print a Config.
func (c Config) String() string {
	return fmt.Sprintf("smtp.Config{Host: %s, Port: %d, From: %s, Security: %s, Auth: %t, Timeout: %s}",
		c.Host, c.Port, senders.MaskEmail(c.From.Address), c.Security, c.Username != "", c.Timeout)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

var hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$`)

// ConfigFrom builds and validates a Config from the provider's spec and Secret.
// spec.endpoint is not used: host and port say where the relay is.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.SMTP == nil {
		return Config{}, senders.InvalidSpec("spec.smtp", "is required for type smtp")
	}
	spec := pc.Spec.SMTP
	cfg := Config{Host: strings.Trim(spec.Host, "[]"), Port: int(spec.Port), Timeout: pc.Timeout(), Dial: pc.Dial()}
	if spec.Host == "" || !hostRe.MatchString(spec.Host) {
		return Config{}, senders.InvalidSpec("spec.smtp.host", "must be a host name or IP address")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return Config{}, senders.InvalidSpec("spec.smtp.port", "must be between 1 and 65535")
	}
	a, err := netmail.ParseAddress(spec.From.Email)
	if err != nil || a.Address != spec.From.Email {
		return Config{}, senders.InvalidSpec("spec.smtp.from.email", "is not a valid email address")
	}
	cfg.From = netmail.Address{Name: spec.From.Name, Address: spec.From.Email}

	switch {
	case cfg.Port == 465:
		cfg.Security = ImplicitTLS
	case spec.StartTLS == nil || *spec.StartTLS:
		cfg.Security = StartTLS
	default:
		cfg.Security = NoTLS
	}

	cfg.Username = strings.TrimSpace(string(pc.Secret[KeyUsername]))
	// A password is taken as is but for a trailing newline: spaces can be part of it.
	cfg.Password = strings.TrimRight(string(pc.Secret[KeyPassword]), "\r\n")
	switch {
	case cfg.Username != "" && cfg.Password == "":
		return Config{}, senders.MissingKey(KeyPassword)
	case cfg.Username == "" && cfg.Password != "":
		return Config{}, senders.MissingKey(KeyUsername)
	case cfg.Username != "" && cfg.Security == NoTLS:
		return Config{}, senders.InvalidSpec("spec.smtp.startTLS",
			"credentials are only sent over TLS: set startTLS to true or use port 465")
	}

	if cfg.TLS, err = pc.TLSConfig(); err != nil {
		return Config{}, err
	}
	cfg.TLS.ServerName = cfg.Host
	return cfg, nil
}

// Sender sends email through one SMTP relay. It is safe for concurrent use.
type Sender struct {
	cfg  Config
	mc   *mail.Client
	addr string

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

type conn struct {
	c    *smtp.Client
	nc   net.Conn
	sent int
	last time.Time
}

// New returns a Sender for cfg. It does not connect.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" || cfg.From.Address == "" {
		return nil, errors.New("smtp: host and from are required")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Security == "" {
		cfg.Security = StartTLS
	}
	if cfg.Username != "" && cfg.Security == NoTLS {
		return nil, errors.New("smtp: credentials need TLS")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = senders.DefaultTimeout
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TLS.ServerName == "" {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.ServerName = cfg.Host
	}
	if cfg.HELO == "" {
		cfg.HELO, _ = os.Hostname()
		if cfg.HELO == "" {
			cfg.HELO = "localhost"
		}
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxMessagesPerConn == 0 {
		cfg.MaxMessagesPerConn = DefaultMaxMessagesPerConn
	}
	// The go-mail client only transfers messages over connections this
	// package dials; its timeout bounds each step of a transfer.
	mc, err := mail.NewClient(cfg.Host, mail.WithPort(cfg.Port), mail.WithTimeout(cfg.Timeout), mail.WithHELO(cfg.HELO))
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	return &Sender{cfg: cfg, mc: mc, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))}, nil
}

// Close says goodbye on the idle connections. Sends after Close still work
// but do not pool their connections.
func (s *Sender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range idle {
		c.quit()
	}
	return nil
}

// Send sends msg.Email to to.Email. ProviderMessageID is the Message-ID header.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	m, id, err := buildMessage(s.cfg.From, to, msg)
	if err != nil {
		return senders.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	for attempt := 0; ; attempt++ {
		c, reused, err := s.get(ctx)
		if err != nil {
			return senders.Result{}, classify(ctx, err, to.Email)
		}
		// The SDK takes no context: closing the connection is how a
		// deadline or cancellation interrupts it.
		stop := context.AfterFunc(ctx, func() { _ = c.nc.Close() })
		err = s.mc.SendWithSMTPClient(c.c, m)
		interrupted := !stop()
		if err == nil {
			if interrupted {
				_ = c.nc.Close()
			} else {
				s.put(c)
			}
			return senders.Result{ProviderMessageID: id}, nil
		}
		_ = c.nc.Close()
		var se *mail.SendError
		if reused && attempt == 0 && ctx.Err() == nil && errors.As(err, &se) && se.Reason == mail.ErrConnCheck {
			continue // the server dropped the idle connection; nothing was sent
		}
		return senders.Result{}, classify(ctx, err, to.Email)
	}
}

// get returns an idle connection still worth using, or dials a new one.
func (s *Sender) get(ctx context.Context) (*conn, bool, error) {
	now := time.Now()
	for {
		s.mu.Lock()
		n := len(s.idle)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		if now.Sub(c.last) < s.cfg.IdleTimeout {
			return c, true, nil
		}
		go c.quit()
	}
	c, err := s.dial(ctx)
	return c, false, err
}

func (s *Sender) put(c *conn) {
	c.sent++
	c.last = time.Now()
	s.mu.Lock()
	if !s.closed && c.sent < s.cfg.MaxMessagesPerConn && len(s.idle) < s.cfg.MaxIdle {
		s.idle = append(s.idle, c)
		c = nil
	}
	s.mu.Unlock()
	if c != nil {
		go c.quit()
	}
}

func (c *conn) quit() {
	_ = c.nc.SetDeadline(time.Now().Add(time.Second))
	_ = c.c.Quit()
	_ = c.nc.Close()
}

var errNoStartTLS = errors.New("server does not offer STARTTLS")

// dial connects, upgrades to TLS and authenticates.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	nc, err := senders.GuardedDial(s.cfg.Dial, s.cfg.Timeout)(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if s.cfg.Security == ImplicitTLS {
		tc := tls.Client(nc, s.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c, err := s.handshake(nc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return &conn{c: c, nc: nc, last: time.Now()}, nil
}

func (s *Sender) handshake(nc net.Conn) (*smtp.Client, error) {
	c, err := smtp.NewClient(nc, s.cfg.Host)
	if err != nil {
		return nil, err
	}
	if err := c.Hello(s.cfg.HELO); err != nil {
		return nil, err
	}
	if s.cfg.Security == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return nil, errNoStartTLS
		}
		if err := c.StartTLS(s.cfg.TLS); err != nil {
			return nil, err
		}
	}
	if s.cfg.Username == "" {
		return c, nil
	}
	ok, mechs := c.Extension("AUTH")
	offered := strings.Fields(strings.ToUpper(mechs))
	var auth smtp.Auth
	switch {
	case ok && contains(offered, "PLAIN"):
		auth = smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host, false)
	case ok && contains(offered, "LOGIN"):
		// A new Auth per connection: LoginAuth keeps state between steps.
		auth = smtp.LoginAuth(s.cfg.Username, s.cfg.Password, s.cfg.Host, false)
	default:
		return nil, errNoAuth
	}
	if err := c.Auth(auth); err != nil {
		return nil, err
	}
	return c, nil
}

var errNoAuth = errors.New("server offers neither AUTH PLAIN nor AUTH LOGIN")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// buildMessage renders msg for one recipient and returns it with its Message-ID.
func buildMessage(from netmail.Address, to senders.Address, msg *senders.Message) (*mail.Msg, string, error) {
	if msg == nil || msg.Email == nil || (msg.Email.Text == "" && msg.Email.HTML == "") {
		return nil, "", senders.Permanent(senders.ReasonPayloadRejected, "", "message has no email text or html")
	}
	if a, err := netmail.ParseAddress(to.Email); err != nil || a.Address != to.Email || strings.ContainsAny(to.Email, "\r\n") {
		return nil, "", senders.Permanent(senders.ReasonInvalidAddress, "",
			fmt.Sprintf("email %q is not a valid address", senders.MaskEmail(to.Email)))
	}
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.FromFormat(from.Name, from.Address); err != nil {
		return nil, "", senders.Permanent(senders.ReasonPayloadRejected, "", "invalid from address")
	}
	if err := m.AddToFormat(to.Name, to.Email); err != nil {
		return nil, "", senders.Permanent(senders.ReasonInvalidAddress, "",
			fmt.Sprintf("email %q is not a valid address", senders.MaskEmail(to.Email)))
	}
	m.Subject(msg.Email.Subject)
	m.SetDate()
	m.SetUserAgent("Herald")
	id := ""
	if msg.ID != "" {
		id = senders.EmailMessageID(msg.ID, from.Address)
		m.SetMessageIDWithValue(strings.Trim(id, "<>"))
	} else {
		m.SetMessageID()
		id = m.GetMessageID()
	}
	if msg.Priority == v1alpha1.PriorityHigh || msg.Priority == v1alpha1.PriorityCritical {
		m.SetImportance(mail.ImportanceHigh)
	}
	if u := msg.Email.ListUnsubscribe; u != "" && !strings.ContainsAny(u, "\r\n>") {
		m.SetGenHeader(mail.HeaderListUnsubscribe, "<"+u+">")
		m.SetGenHeader(mail.HeaderListUnsubscribePost, senders.OneClickUnsubscribe)
	}
	switch {
	case msg.Email.Text != "" && msg.Email.HTML != "":
		m.SetBodyString(mail.TypeTextPlain, msg.Email.Text)
		m.AddAlternativeString(mail.TypeTextHTML, msg.Email.HTML)
	case msg.Email.Text != "":
		m.SetBodyString(mail.TypeTextPlain, msg.Email.Text)
	default:
		m.SetBodyString(mail.TypeTextHTML, msg.Email.HTML)
	}
	return m, id, nil
}

var (
	enhancedRe = regexp.MustCompile(`\b([245]\.\d{1,3}\.\d{1,3})\b`)
	replyRe    = regexp.MustCompile(`\b([2-5][0-9][0-9])\b`)
)

// classify maps a failed send or dial to a *senders.Error.
func classify(ctx context.Context, err error, rcpt string) *senders.Error {
	// The connection's deadline can fire a moment before the context's.
	if dl, ok := ctx.Deadline(); errors.Is(ctx.Err(), context.DeadlineExceeded) || (ok && !time.Now().Before(dl)) {
		return senders.Transient(senders.ReasonTimeout, "", "smtp call timed out")
	}
	if ctx.Err() != nil {
		return senders.Transient(senders.ReasonNetwork, "", "smtp call canceled")
	}
	if e := senders.Unreachable(err); e != nil {
		return e
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		text := se.Error()
		if i := strings.Index(text, ", affected recipient"); i >= 0 {
			text = text[:i]
		}
		if i := strings.Index(text, ", affected message ID"); i >= 0 {
			text = text[:i]
		}
		code := se.ErrorCode()
		if code == 0 && strings.Contains(text, "i/o timeout") {
			return senders.Transient(senders.ReasonTimeout, "", "smtp call timed out")
		}
		if code == 0 {
			// go-mail's own failure, or the connection's.
			if se.Reason == mail.ErrGetRcpts || se.Reason == mail.ErrGetSender {
				return senders.Permanent(senders.ReasonInvalidAddress, "", senders.ScrubEmails(text, rcpt))
			}
			return senders.Transient(senders.ReasonNetwork, "", senders.ScrubEmails(text, rcpt))
		}
		esc := se.EnhancedStatusCode()
		if esc == "" {
			esc = enhancedRe.FindString(text)
		}
		return byCode(code, esc, se.Reason == mail.ErrSMTPRcptTo, senders.ScrubEmails(text, rcpt))
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return byCode(te.Code, enhancedRe.FindString(te.Msg), false, senders.ScrubEmails(fmt.Sprintf("%d %s", te.Code, te.Msg), rcpt))
	}
	switch {
	case errors.Is(err, errNoStartTLS), errors.Is(err, errNoAuth):
		return senders.Permanent(senders.ReasonRejected, "", err.Error())
	case errors.Is(err, smtp.ErrUnencrypted), errors.Is(err, smtp.ErrWrongHostname):
		return senders.Permanent(senders.ReasonAuthFailed, "", err.Error())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return senders.Transient(senders.ReasonTimeout, "", "smtp call timed out")
	}
	// A reply code without a typed error (wrapped text from go-mail).
	if m := replyRe.FindString(err.Error()); m != "" && (m[0] == '4' || m[0] == '5') {
		code, _ := strconv.Atoi(m)
		return byCode(code, enhancedRe.FindString(err.Error()), false, senders.ScrubEmails(err.Error(), rcpt))
	}
	return senders.Transient(senders.ReasonNetwork, "", senders.ScrubEmails(err.Error(), rcpt))
}

// byCode maps an SMTP reply: 5xx is permanent, 4xx transient.
func byCode(code int, esc string, atRcpt bool, text string) *senders.Error {
	e := &senders.Error{StatusCode: code, Code: esc, Message: text}
	switch {
	case code == 530 || code == 534 || code == 535 || code == 538:
		e.Permanent, e.Reason = true, senders.ReasonAuthFailed
	case code == 550 || code == 551 || code == 553:
		e.Permanent, e.Reason = true, senders.ReasonRejected
		if atRcpt || strings.HasPrefix(esc, "5.1.") {
			e.Reason = senders.ReasonInvalidAddress
		}
	case code >= 500:
		// 552 (size or storage), 554 (policy, spam) and the rest.
		e.Permanent, e.Reason = true, senders.ReasonRejected
	case code >= 400:
		// 421 (closing), 450 (mailbox busy, greylisting), 451 (local
		// error), 452 (storage): retry later.
		e.Reason = senders.ReasonUnavailable
	default:
		e.Permanent, e.Reason = true, senders.ReasonRejected
	}
	return e
}
