package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/manager"
	"github.com/herald-dev/herald/internal/testenv"
)

var env *testenv.Env

// unsubscribeKey signs the manager's one-click unsubscribe links.
const unsubscribeKey = "test-unsubscribe-key-of-32-bytes!"

// inboundAddr is where the manager's inbound server listens (127.0.0.1).
var inboundAddr string

// clk is the manager's clock: real time plus an offset a test may move
// forward (quiet hours end on a minute boundary; the test jumps to just
// before one instead of waiting for it).
var clk = &offsetClock{}

// The running manager; restartManager replaces it.
var (
	mgrCancel context.CancelFunc
	mgrDone   chan error
)

// TestMain starts one API server and one manager for the package's tests;
// tests assert against the API server directly, not the manager's cache.
func TestMain(m *testing.M) {
	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env = e
	if inboundAddr, err = testenv.LoopbackAddr(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.InfoLevel), zap.WriteTo(os.Stderr)))
	if err := startManager(nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopManager()
	_ = e.Stop()
	os.Exit(code)
}

func managerOptions() manager.Options {
	o := manager.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.Namespace = "0", "0", "default"
	o.OutboxDir = os.TempDir()
	o.EgressAllowCIDRs = "127.0.0.0/8" // the provider fakes
	o.Clock = clk
	o.SkipControllerNameValidation = true
	// Receipts and Receivers: loopback only, the same address across restarts.
	o.InboundAddr, o.InboundPublicURL = inboundAddr, "http://"+inboundAddr
	o.UnsubscribeKey = []byte(unsubscribeKey)
	// A send hung on purpose must not hold every restart for 20 s.
	o.DrainTimeout = 2 * time.Second
	return o
}

// startManager starts a manager (with fresh in-memory state) on the
// shared API server, with options changed by mod when not nil.
func startManager(mod func(*manager.Options)) error {
	o := managerOptions()
	if mod != nil {
		mod(&o)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(reads.wrap)
	mgr, err := manager.New(cfg, o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	mgrCancel, mgrDone = cancel, done
	return nil
}

// stopManager stops the running manager and waits for it, as a rollout
// would (graceful: sends in flight are given DrainTimeout to finish and be
// recorded; what has not started stays pending).
func stopManager() {
	mgrCancel()
	<-mgrDone
}

// restartManagerWith stops the manager and starts a new one, as a restart
// of the operator's pod would, with options changed by mod when not nil.
func restartManagerWith(t *testing.T, mod func(*manager.Options)) {
	t.Helper()
	stopManager()
	if err := startManager(mod); err != nil {
		t.Fatal(err)
	}
}

// reads records the manager's reads (GET requests, watches aside) of
// Notifications in a namespace, as "namespace/name" for a get and
// "namespace list" for a list.
var reads = &readLog{}

type readLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *readLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "" {
			// /apis/notify.herald.dev/v1alpha1/namespaces/NS/notifications[/NAME]
			p := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
			if len(p) >= 6 && p[0] == "apis" && p[1] == v1alpha1.GroupVersion.Group && p[3] == "namespaces" && p[5] == "notifications" {
				read := p[4] + " list"
				if len(p) >= 7 {
					read = p[4] + "/" + p[6]
				}
				l.mu.Lock()
				l.seen = append(l.seen, read)
				l.mu.Unlock()
			}
		}
		return rt.RoundTrip(req)
	})
}

// in returns the reads recorded in namespace ns.
func (l *readLog) in(ns string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.seen {
		if strings.HasPrefix(r, ns+" ") || strings.HasPrefix(r, ns+"/") {
			out = append(out, r)
		}
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// offsetClock is the real clock shifted by an offset.
type offsetClock struct {
	clock.RealClock
	offset atomic.Int64
}

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock by d; timers already running keep their durations.
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCondition waits until obj's condition typ has status and reason, and returns its message.
func waitCondition(t *testing.T, obj client.Object, conds func() []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) string {
	t.Helper()
	var msg string
	eventually(t, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(conds(), typ)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s condition %s is %+v, want %s/%s", obj.GetName(), typ, c, status, reason)
		}
		if c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("condition observed generation %d, object at %d", c.ObservedGeneration, obj.GetGeneration())
		}
		msg = c.Message
		return nil
	})
	return msg
}

// waitEvent waits for an Event about obj with the reason.
func waitEvent(t *testing.T, obj client.Object, reason string) *eventsv1.Event {
	t.Helper()
	var found *eventsv1.Event
	eventually(t, func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for i, e := range list.Items {
			if e.Regarding.UID == obj.GetUID() && e.Reason == reason {
				found = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s among %d", reason, obj.GetName(), len(list.Items))
	})
	return found
}

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

var _ = v1alpha1.GroupVersion

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }
