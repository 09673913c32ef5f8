package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-dev/herald/internal/testenv"
)

// BuildManager builds the manager binary (./cmd) to out.
func BuildManager(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd")
	cmd.Dir = testenv.Root()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd: %w\n%s", err, b)
	}
	return nil
}

// ManagerOptions say how to run the manager process.
type ManagerOptions struct {
	// Binary built by BuildManager.
	Binary     string
	Kubeconfig string
	// OutboxDir is where log providers append outbox.jsonl.
	OutboxDir string
	// LogFile receives the manager's stdout and stderr (appended, so a
	// restarted manager's log follows the killed one's).
	LogFile string
	// Args are extra flags, e.g. --kube-api-qps.
	Args []string
}

// Manager is a running manager process.
type Manager struct {
	opts       ManagerOptions
	cmd        *exec.Cmd
	done       chan struct{}
	err        error
	MetricsURL string
	healthURL  string
	// Starts counts how often the process was started and became ready.
	Starts int
}

// StartManager starts the manager and waits until it is healthy.
func StartManager(ctx context.Context, o ManagerOptions) (*Manager, error) {
	m := &Manager{opts: o}
	return m, m.Start(ctx)
}

// errExited: the process ended before it was ready.
var errExited = errors.New("manager exited while starting")

// Start (re)starts the process on fresh ports and waits until its probe and
// metrics servers answer. A free port can be taken by another process
// (one of the control plane's outgoing connections) before the manager
// binds it, and the manager then exits: Start tries again, three times in
// all, on other ports.
func (m *Manager) Start(ctx context.Context) error {
	var err error
	for range 3 {
		if err = m.start(ctx); !errors.Is(err, errExited) {
			return err
		}
	}
	return err
}

func (m *Manager) start(ctx context.Context) error {
	metrics, err := testenv.LoopbackAddr()
	if err != nil {
		return err
	}
	probe, err := testenv.LoopbackAddr()
	if err != nil {
		return err
	}
	args := append([]string{
		"--kubeconfig=" + m.opts.Kubeconfig,
		"--leader-elect=false",
		"--namespace=default",
		"--metrics-bind-address=" + metrics,
		"--health-probe-bind-address=" + probe,
		"--outbox-dir=" + m.opts.OutboxDir,
		// The provider fakes listen on loopback.
		"--egress-allow-cidrs=127.0.0.0/8",
		// Every message the log provider writes is also an Info line;
		// at bench rates that logging would be the work measured.
		"--zap-log-level=error",
	}, m.opts.Args...)
	log, err := os.OpenFile(m.opts.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\n==== start %d at %s: %s\n", m.Starts+1, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(m.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return err
	}
	m.cmd, m.done, m.err = cmd, make(chan struct{}), nil
	m.MetricsURL = "http://" + metrics + "/metrics"
	m.healthURL = "http://" + probe + "/readyz"
	done := m.done
	go func() {
		m.err = cmd.Wait()
		_ = log.Close()
		close(done)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := Scrape(ctx, m.healthURL); err == nil {
			if _, err := Scrape(ctx, m.MetricsURL); err == nil {
				m.Starts++
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%w: %v (log: %s)", errExited, m.err, m.opts.LogFile)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("manager not ready after a minute (log: %s)", m.opts.LogFile)
		}
	}
}

// Pid is the running process's id.
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// Running reports whether the process is alive.
func (m *Manager) Running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// ExitErr is how the process ended (nil while it runs).
func (m *Manager) ExitErr() error {
	if m.Running() {
		return nil
	}
	return m.err
}

// Kill sends SIGKILL and waits for the process to be gone.
func (m *Manager) Kill() {
	if m.cmd == nil || !m.Running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// Stop asks the manager to shut down (SIGTERM), as a rollout does, and
// kills it after 40 s (past its 20 s drain).
func (m *Manager) Stop() {
	if m.cmd == nil || !m.Running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(40 * time.Second):
		m.Kill()
	}
}

// RSSBytes is the process's resident set size (VmRSS).
func (m *Manager) RSSBytes() (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(m.Pid()), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", m.Pid())
}

// Metrics scrapes the manager's /metrics.
func (m *Manager) Metrics(ctx context.Context) (Metrics, error) { return Scrape(ctx, m.MetricsURL) }
