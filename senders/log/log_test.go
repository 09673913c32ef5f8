package log_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/senders"
	heraldlog "github.com/herald-dev/herald/senders/log"
)

var logMu sync.Mutex

func newSender(t *testing.T, dir string, ch v1alpha1.Channel, lines *[]string) *heraldlog.Sender {
	t.Helper()
	return newSenderWith(t, dir, &v1alpha1.LogConfig{Channel: ch}, lines)
}

func newSenderWith(t *testing.T, dir string, lc *v1alpha1.LogConfig, lines *[]string) *heraldlog.Sender {
	t.Helper()
	logger := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		*lines = append(*lines, args)
	}, funcr.Options{})
	cfg, err := heraldlog.ConfigFrom(senders.ProviderConfig{
		Name:      "ChannelProvider/dev",
		Spec:      &v1alpha1.ChannelProviderSpec{Type: v1alpha1.ProviderLog, Log: lc},
		Log:       logger,
		OutboxDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := heraldlog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendWritesOutboxAndMaskedLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "outbox")
	var lines []string
	s := newSender(t, dir, v1alpha1.ChannelSMS, &lines)
	msg := &senders.Message{
		ID:           "uid-1/0",
		Notification: senders.NotificationRef{Namespace: "ci", Name: "build", UID: "uid-1", Category: "builds"},
		SMS:          &senders.SMS{Text: "Build 1234 failed"},
	}
	res, err := s.Send(context.Background(), senders.Address{Phone: "+14155550100"}, msg)
	if err != nil || res.ProviderMessageID != "uid-1/0" {
		t.Fatalf("Send: %v %v", res, err)
	}
	entries, err := heraldlog.ReadOutbox(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox: %v %v", entries, err)
	}
	e := entries[0]
	if e.Channel != "sms" || e.ID != "uid-1/0" || e.To.Phone != "+14155550100" || e.SMS == nil || e.SMS.Text != "Build 1234 failed" ||
		e.Notification.Name != "build" || e.Provider != "ChannelProvider/dev" || e.Time.IsZero() {
		t.Errorf("entry %+v", e)
	}
	if fi, err := os.Stat(filepath.Join(dir, heraldlog.OutboxFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode %v %v", fi, err)
	}
	if len(lines) != 1 || strings.Contains(lines[0], "+14155550100") || !strings.Contains(lines[0], "+1415*****00") {
		t.Errorf("log lines %q", lines)
	}
	// The text (a one-time code, a reset link) stays out of the log unless
	// the spec asks for it.
	if strings.Contains(lines[0], "Build 1234") {
		t.Errorf("log line carries the message text by default: %q", lines[0])
	}
	var with []string
	s = newSenderWith(t, t.TempDir(), &v1alpha1.LogConfig{Channel: v1alpha1.ChannelSMS, LogContent: true}, &with)
	if _, err := s.Send(context.Background(), senders.Address{Phone: "+14155550100"}, msg); err != nil {
		t.Fatal(err)
	}
	if len(with) != 1 || !strings.Contains(with[0], "Build 1234 failed") {
		t.Errorf("with logContent: %q", with)
	}
}

func TestLogOnly(t *testing.T) {
	var lines []string
	s := newSender(t, "", v1alpha1.ChannelEmail, &lines)
	_, err := s.Send(context.Background(), senders.Address{Email: "alice@example.com"},
		&senders.Message{ID: "x", Email: &senders.Email{Subject: "Hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || strings.Contains(lines[0], "alice@") || !strings.Contains(lines[0], "a***@example.com") {
		t.Errorf("log lines %q", lines)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	a := newSender(t, dir, v1alpha1.ChannelPush, &lines)
	b := newSender(t, dir, v1alpha1.ChannelPush, &lines) // a second provider, same outbox
	big := strings.Repeat("x", 70000)                    // longer than an atomic pipe write
	var wg sync.WaitGroup
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.Send(context.Background(), senders.Address{Device: &v1alpha1.DeviceTarget{Platform: "ios", Token: "abcdef0123456789"}},
				&senders.Message{ID: "m", Push: &senders.Push{Title: "t", Body: big}})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	entries, err := heraldlog.ReadOutbox(dir)
	if err != nil || len(entries) != 40 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for _, l := range lines {
		if strings.Contains(l, "abcdef0123456789") {
			t.Errorf("token in log %q", l)
		}
	}
}

func TestWriteFailureIsTransient(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	s := newSender(t, dir, v1alpha1.ChannelSMS, &lines)
	// A directory where the file should be makes every append fail.
	if err := os.Mkdir(filepath.Join(dir, heraldlog.OutboxFile), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(context.Background(), senders.Address{Phone: "+14155550100"}, &senders.Message{ID: "x", SMS: &senders.SMS{Text: "t"}})
	if e := senders.AsError(err); e == nil || e.Permanent || e.Reason != senders.ReasonUnavailable {
		t.Errorf("got %v", err)
	}
}

func TestConfigFrom(t *testing.T) {
	for name, spec := range map[string]*v1alpha1.ChannelProviderSpec{
		"no block":    {Type: v1alpha1.ProviderLog},
		"bad channel": {Type: v1alpha1.ProviderLog, Log: &v1alpha1.LogConfig{Channel: "fax"}},
	} {
		_, err := heraldlog.ConfigFrom(senders.ProviderConfig{Spec: spec})
		var ce *senders.ConfigError
		if !errors.As(err, &ce) || ce.Reason != v1alpha1.ReasonInvalidSpec {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The descriptor is kept open between sends; removing the outbox starts a
// new file rather than writing into the removed one.
func TestOutboxRemovedStartsANewFile(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	s := newSender(t, dir, v1alpha1.ChannelSMS, &lines)
	send := func(id string) {
		t.Helper()
		if _, err := s.Send(context.Background(), senders.Address{Phone: "+14155550100"}, &senders.Message{ID: id, SMS: &senders.SMS{Text: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	send("b")
	if err := os.Remove(filepath.Join(dir, heraldlog.OutboxFile)); err != nil {
		t.Fatal(err)
	}
	send("c")
	entries, err := heraldlog.ReadOutbox(dir)
	if err != nil || len(entries) != 1 || entries[0].ID != "c" {
		t.Fatalf("outbox after removal: %+v %v", entries, err)
	}
}
