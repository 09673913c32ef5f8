// Package smtp is a loopback SMTP server (github.com/emersion/go-smtp) with
// STARTTLS under a self-signed CA it exports as PEM, AUTH PLAIN and LOGIN
// (offered only over TLS, as real submission servers do), scripted reply
// codes and latency, and a log of every message with its parsed headers and
// text and HTML bodies.
package smtp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"encoding/base64"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/herald-dev/herald/senders/fake"
)

// Options configures the fake.
type Options struct {
	// Username and Password, when set, make AUTH mandatory before MAIL.
	Username string
	Password string
	// NoTLS stops the server offering STARTTLS.
	NoTLS bool
	// Seed drives the Script's random faults.
	Seed uint64
}

// Message is one mail transaction the server saw.
type Message struct {
	Time     time.Time
	From     string
	To       []string
	TLS      bool
	AuthUser string
	Raw      []byte
	Header   mail.Header
	// Subject is decoded from its RFC 2047 form.
	Subject   string
	MessageID string
	// Text and HTML are the decoded bodies, line endings turned back into
	// "\n" and the final one dropped.
	Text string
	HTML string
	// Status is the reply code the server gave the transaction (250 when accepted).
	Status int
}

// Server is the fake.
type Server struct {
	Script   *fake.Script
	Received fake.Log[Message]

	opts Options
	ln   net.Listener
	srv  *gosmtp.Server

	mu    sync.Mutex
	conns int
}

// New starts the server on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	_, cert, err := testCA()
	if err != nil {
		return nil, err
	}
	ln, err := fake.Listen()
	if err != nil {
		return nil, err
	}
	s := &Server{Script: fake.NewScript(opts.Seed), opts: opts, ln: ln}
	s.srv = gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	s.srv.Domain = "fake-smtp.herald.test"
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.MaxRecipients = 100
	s.srv.ErrorLog = quiet{}
	if !opts.NoTLS {
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host is the address to put in spec.smtp.host.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the port to put in spec.smtp.port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// URL is smtp://host:port, for logs and dev tooling.
func (s *Server) URL() string { return "smtp://" + s.Addr() }

// CA is the PEM of the CA that signed the certificate the server presents
// (for 127.0.0.1, ::1 and localhost): the provider's tls.caSecretRef content.
func (s *Server) CA() []byte {
	pem, _, _ := testCA()
	return pem
}

// Connections is how many connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Accepted returns the messages answered with 250.
func (s *Server) Accepted() []Message {
	var out []Message
	for _, m := range s.Received.All() {
		if m.Status == 250 {
			out = append(out, m)
		}
	}
	return out
}

// Close stops the server and drops open connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	// Serve may not have taken the listener yet.
	_ = s.ln.Close()
	return err
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	// STARTTLS starts a second session on the same connection.
	if _, upgraded := c.TLSConnectionState(); !upgraded {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
	}
	return &session{s: s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *gosmtp.Conn
	user string

	msg   Message
	fault fake.Fault
}

func (ss *session) tls() bool {
	_, ok := ss.conn.TLSConnectionState()
	return ok
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != ss.s.opts.Username || pass != ss.s.opts.Password {
			return gosmtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return gosmtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.user == "" {
		return &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.msg = Message{Time: time.Now(), From: from, TLS: ss.tls(), AuthUser: ss.user}
	ss.fault = ss.s.Script.Next()
	f := ss.fault
	if f.Drop {
		_ = ss.conn.Conn().Close()
		return errors.New("dropped")
	}
	if phase(f.Status) == "mail" {
		return ss.reject()
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	ss.msg.To = append(ss.msg.To, to)
	if phase(ss.fault.Status) == "rcpt" {
		return ss.reject()
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.Raw = raw
	parse(&ss.msg)
	if d := ss.fault.Latency; d > 0 {
		time.Sleep(d)
	}
	if phase(ss.fault.Status) == "data" {
		return ss.reject()
	}
	ss.msg.Status = 250
	ss.s.Received.Add(ss.msg)
	return nil
}

func (ss *session) Reset() {
	ss.msg = Message{}
	ss.fault = fake.Fault{}
}

func (ss *session) Logout() error { return nil }

// reject records the transaction and answers with the scripted code.
func (ss *session) reject() error {
	f := ss.fault
	ss.fault = fake.Fault{}
	ss.msg.Status = f.Status
	ss.s.Received.Add(ss.msg)
	e := &gosmtp.SMTPError{Code: f.Status, Message: f.Reason}
	if m := enhancedRe.FindStringSubmatch(f.Reason); m != nil {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		c, _ := strconv.Atoi(m[3])
		e.EnhancedCode = gosmtp.EnhancedCode{a, b, c}
		e.Message = strings.TrimSpace(f.Reason[len(m[0]):])
	} else if d, ok := defaults[f.Status]; ok {
		e.EnhancedCode = d.code
		if e.Message == "" {
			e.Message = d.text
		}
	}
	if e.Message == "" {
		e.Message = "Scripted failure"
	}
	if f.Status == 421 {
		// 421 closes the channel, as the RFC says it must.
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = ss.conn.Conn().Close()
		}()
	}
	return e
}

var enhancedRe = regexp.MustCompile(`^([245])\.(\d{1,3})\.(\d{1,3})\b`)

var defaults = map[int]struct {
	code gosmtp.EnhancedCode
	text string
}{
	421: {gosmtp.EnhancedCode{4, 3, 2}, "Service not available, closing transmission channel"},
	450: {gosmtp.EnhancedCode{4, 2, 1}, "Mailbox temporarily unavailable, try again later"},
	451: {gosmtp.EnhancedCode{4, 3, 0}, "Local error in processing"},
	452: {gosmtp.EnhancedCode{4, 2, 2}, "Insufficient system storage"},
	530: {gosmtp.EnhancedCode{5, 7, 0}, "Authentication required"},
	535: {gosmtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid"},
	550: {gosmtp.EnhancedCode{5, 1, 1}, "Mailbox unavailable"},
	551: {gosmtp.EnhancedCode{5, 1, 6}, "User not local"},
	552: {gosmtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed maximum message size"},
	553: {gosmtp.EnhancedCode{5, 1, 3}, "Mailbox name not allowed"},
	554: {gosmtp.EnhancedCode{5, 7, 1}, "Message rejected"},
}

// phase says when a scripted code is answered: recipient problems at RCPT,
// session problems at MAIL, everything else after the data.
func phase(code int) string {
	switch code {
	case 0:
		return ""
	case 550, 551, 553, 450, 452:
		return "rcpt"
	case 421, 530, 535:
		return "mail"
	}
	return "data"
}

// parse fills the parsed fields of m from m.Raw.
func parse(m *Message) {
	pm, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return
	}
	m.Header = pm.Header
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(pm.Header.Get("Subject")); err == nil {
		m.Subject = s
	}
	m.MessageID = pm.Header.Get("Message-Id")
	walk(m, pm.Header.Get("Content-Type"), pm.Header.Get("Content-Transfer-Encoding"), pm.Body)
}

func walk(m *Message, contentType, cte string, body io.Reader) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walk(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		}
	}
	var r io.Reader = body
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &stripCRLF{r: body})
	}
	b, _ := io.ReadAll(r)
	text := strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	switch mt {
	case "text/plain":
		if m.Text == "" {
			m.Text = text
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = text
		}
	}
}

type stripCRLF struct{ r io.Reader }

func (s *stripCRLF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the username
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.step++
		l.user = string(response)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(response))
	}
}

type quiet struct{}

func (quiet) Printf(string, ...interface{}) {}
func (quiet) Println(...interface{})        {}
