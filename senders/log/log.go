// Package log is the development provider: instead of sending, it writes
// each message to the operator's log (address masked) and appends it as one
// JSON line to <OutboxDir>/outbox.jsonl, where `make dev`, dry runs and
// end-to-end tests read what would have gone out. It never fails except when
// the outbox cannot be written, which is transient.
package log

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
)

// OutboxFile is the file's name inside the outbox directory.
const OutboxFile = "outbox.jsonl"

// Config is everything a Sender needs.
type Config struct {
	// Name is the provider's Kind/name, recorded with each message.
	Name string
	// Channel is the channel this provider stands in for.
	Channel v1alpha1.Channel
	Log     logr.Logger
	// OutboxDir is where outbox.jsonl goes; empty means log only.
	OutboxDir string
	// LogContent puts a summary of the content in the log line
	// (spec.log.logContent); otherwise only its size is logged.
	LogContent bool
}

// ConfigFrom builds and validates a Config from the provider's spec.
func ConfigFrom(pc senders.ProviderConfig) (Config, error) {
	if pc.Spec == nil || pc.Spec.Log == nil {
		return Config{}, senders.InvalidSpec("spec.log", "is required for type log")
	}
	ch := pc.Spec.Log.Channel
	ok := false
	for _, c := range v1alpha1.AllChannels {
		ok = ok || c == ch
	}
	if !ok {
		return Config{}, senders.InvalidSpec("spec.log.channel", "must be one of push, sms, email, webhook")
	}
	return Config{Name: pc.Name, Channel: ch, Log: pc.Log, OutboxDir: pc.OutboxDir, LogContent: pc.Spec.Log.LogContent}, nil
}

// Sender logs messages and appends them to the outbox. It is safe for
// concurrent use, also with other Senders sharing the outbox.
type Sender struct {
	cfg    Config
	path   string
	outbox *outbox
	now    func() time.Time
}

// New returns a Sender for cfg, creating the outbox directory.
func New(cfg Config) (*Sender, error) {
	s := &Sender{cfg: cfg, now: time.Now}
	if cfg.OutboxDir != "" {
		if err := os.MkdirAll(cfg.OutboxDir, 0o700); err != nil {
			return nil, fmt.Errorf("log provider: %w", err)
		}
		s.path = filepath.Join(cfg.OutboxDir, OutboxFile)
		s.outbox = outboxFor(s.path)
	}
	return s, nil
}

// outboxes holds one descriptor per outbox file, shared by the Senders
// writing it: each line goes out in one write on an O_APPEND descriptor, and
// the lock keeps lines longer than the kernel's atomic write size whole too.
// The descriptor stays open for the process's life (opening the file for
// every message cost a tenth of the manager's CPU in a fan-out); it is
// opened again when the path no longer names the file it has open, so
// removing the outbox (to start afresh in `make dev`) works.
var outboxes sync.Map // path -> *outbox

type outbox struct {
	mu sync.Mutex
	f  *os.File
	fi os.FileInfo
}

func outboxFor(path string) *outbox {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	o, _ := outboxes.LoadOrStore(path, new(outbox))
	return o.(*outbox)
}

// Entry is one line of the outbox. It holds the full address: the outbox
// stands in for the recipient's inbox or phone, and is written with mode 0600.
type Entry struct {
	Time         time.Time               `json:"time"`
	Provider     string                  `json:"provider,omitempty"`
	Channel      string                  `json:"channel"`
	ID           string                  `json:"id"`
	Notification senders.NotificationRef `json:"notification"`
	Priority     string                  `json:"priority,omitempty"`
	To           Address                 `json:"to"`
	Email        *senders.Email          `json:"email,omitempty"`
	SMS          *senders.SMS            `json:"sms,omitempty"`
	Push         *senders.Push           `json:"push,omitempty"`
	Webhook      *senders.Webhook        `json:"webhook,omitempty"`
}

// Address is the recipient of an Entry.
type Address struct {
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Platform string `json:"platform,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Send logs msg and appends it to the outbox. ProviderMessageID is msg.ID.
func (s *Sender) Send(ctx context.Context, to senders.Address, msg *senders.Message) (senders.Result, error) {
	if msg == nil {
		return senders.Result{}, senders.Permanent(senders.ReasonPayloadRejected, "", "no message")
	}
	if err := ctx.Err(); err != nil {
		return senders.Result{}, senders.AsError(err)
	}
	e := entry(s.now(), s.cfg, to, msg)
	kv := []any{"provider", s.cfg.Name, "channel", e.Channel, "id", msg.ID,
		"notification", msg.Notification.Namespace + "/" + msg.Notification.Name, "to", senders.MaskAddress(to)}
	if s.cfg.LogContent {
		kv = append(kv, "summary", summary(msg))
	} else {
		kv = append(kv, "summaryChars", len([]rune(summary(msg))))
	}
	s.cfg.Log.Info("Message written to the log provider instead of sent", kv...)
	if s.path == "" {
		return senders.Result{ProviderMessageID: msg.ID}, nil
	}
	line, err := json.Marshal(e)
	if err != nil && e.Webhook != nil {
		// Only a Webhook.Body that is not JSON gets here; keep it as a string.
		e.Webhook.Body, _ = json.Marshal(string(e.Webhook.Body))
		if line, err = json.Marshal(e); err != nil {
			return senders.Result{}, senders.Permanent(senders.ReasonPayloadRejected, "", "cannot encode the message")
		}
	}
	if err := s.append(append(line, '\n')); err != nil {
		return senders.Result{}, senders.Transient(senders.ReasonUnavailable, "", "writing the outbox: "+err.Error())
	}
	return senders.Result{ProviderMessageID: msg.ID}, nil
}

func (s *Sender) append(line []byte) error {
	o := s.outbox
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		if fi, err := os.Stat(s.path); err != nil || !os.SameFile(fi, o.fi) {
			_ = o.f.Close()
			o.f = nil
		}
	}
	if o.f == nil {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			return errors.Join(err, f.Close())
		}
		o.f, o.fi = f, fi
	}
	_, err := o.f.Write(line)
	return err
}

func entry(now time.Time, cfg Config, to senders.Address, msg *senders.Message) Entry {
	n := msg.Notification
	e := Entry{
		Time: now.UTC(), Provider: cfg.Name, Channel: string(cfg.Channel), ID: msg.ID,
		Notification: n,
		Priority:     string(msg.Priority),
		To:           Address{Name: to.Name, Email: to.Email, Phone: to.Phone},
	}
	if to.Device != nil {
		e.To.Platform, e.To.Token = string(to.Device.Platform), to.Device.Token
	}
	e.Email, e.SMS, e.Push, e.Webhook = msg.Email, msg.SMS, msg.Push, msg.Webhook
	if e.Channel == "" {
		e.Channel = string(channelOf(msg))
	}
	return e
}

func channelOf(msg *senders.Message) v1alpha1.Channel {
	switch {
	case msg.Email != nil:
		return v1alpha1.ChannelEmail
	case msg.SMS != nil:
		return v1alpha1.ChannelSMS
	case msg.Push != nil:
		return v1alpha1.ChannelPush
	case msg.Webhook != nil:
		return v1alpha1.ChannelWebhook
	}
	return ""
}

// summary is a short, single-line description of the content for the log.
func summary(msg *senders.Message) string {
	var s string
	switch {
	case msg.Email != nil:
		s = msg.Email.Subject
	case msg.SMS != nil:
		s = msg.SMS.Text
	case msg.Push != nil:
		s = msg.Push.Title
	case msg.Webhook != nil:
		s = msg.Webhook.Text
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80]) + "…"
	}
	return s
}

// ReadOutbox returns the entries in dir's outbox, oldest first; none if there
// is no outbox yet.
func ReadOutbox(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, OutboxFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("%s line %d: %w", OutboxFile, len(out)+1, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
