package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/hack/bench"
)

// maxUnrecorded is the manager's --max-unrecorded-sends default: what one
// SIGKILL may re-send per provider.
const maxUnrecorded = 128

// TestCrash fans one Notification out to many users while the manager
// process is SIGKILLed at random moments and restarted in place with its
// journal (--journal-dir, as the Helm chart runs it): every recipient must
// receive at least one message, every delivery must end terminal, and the
// duplicates (at-least-once) are the sends in flight at the kills: at most
// the provider's concurrency per kill. The 0.5 % target is a
// figure, not asserted: a kill that lands while every worker is between
// the provider's answer and the journal re-sends them all (32 of 2,000 is
// 1.6 %). TestTwoReplicas covers a crash without the journal.
func TestCrash(t *testing.T) {
	kills := scale(2, 5)
	dups := restarts(t, "crash", kills, (*bench.Manager).Kill, "--journal-dir="+filepath.Join(workDir, "crash", "journal"))
	if bound := kills * providerConcurrency; dups > bound {
		t.Errorf("%d duplicates over %d kills, above the %d in flight a kill can catch", dups, kills, bound)
	}
	if pct := 100 * float64(dups) / float64(fanOutUsers()); pct > 0.5 {
		t.Logf("duplicates %.2f%% of the recipients, above the 0.5%% target", pct)
	}
}

// providerConcurrency is the restart tests' provider's spec.concurrency:
// the sends it can have in flight.
const providerConcurrency = 32

// fanOutUsers is the size of the fan-out the restart tests send.
func fanOutUsers() int { return scale(2000, 10000) }

// TestRollout is TestCrash with SIGTERM, as a rollout or a node drain
// sends: the manager drains before it stops, so nothing is sent twice.
func TestRollout(t *testing.T) {
	if dups := restarts(t, "rollout", scale(2, 5), (*bench.Manager).Stop); dups != 0 {
		t.Errorf("%d duplicates across graceful restarts, want 0", dups)
	}
}

// TestTwoReplicas runs two managers with leader election, as
// config/default does, and SIGKILLs whichever leads in the middle of the
// fan-out: the other takes the Lease when it runs out and finishes, nothing
// is lost, and duplicates stay within the crash bound.
func TestTwoReplicas(t *testing.T) {
	kills := scale(2, 3)
	dups := restarts(t, "replicas", kills, (*bench.Manager).Kill,
		"--leader-elect=true", "--leader-election-namespace=default",
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms")
	if bound := kills * maxUnrecorded; dups > bound {
		t.Errorf("%d duplicates over %d leader kills, above the bound of %d", dups, kills, bound)
	}
}

// restarts fans one Notification out while stop ends the manager process
// kills times, each followed by a restart, checks that every recipient got
// at least one message and everything ended, and returns the duplicates.
// With leader election among args, it runs two managers and stops the
// leader each time.
func restarts(t *testing.T, name string, kills int, stop func(*bench.Manager), args ...string) int {
	ctx := context.Background()
	users := fanOutUsers()
	ns := namespace(t, "soak-"+name)
	m, outbox := startManager(t, name, args...)
	managers := []*bench.Manager{m}
	if slices.Contains(args, "--leader-elect=true") {
		standby, err := bench.StartManager(ctx, bench.ManagerOptions{Binary: binary, Kubeconfig: plane.Kubeconfig,
			OutboxDir: outbox, LogFile: filepath.Join(workDir, name, "standby.log"), Args: args})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(standby.Stop)
		managers = append(managers, standby)
	}
	if err := bench.CreateUsers(ctx, plane.Client, ns, name, users, 32); err != nil {
		t.Fatal(err)
	}
	if err := bench.WaitUsersReady(ctx, plane.Client, ns, users, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := bench.LogProvider(ctx, plane.Client, ns, v1alpha1.ChannelEmail, providerConcurrency); err != nil {
		t.Fatal(err)
	}

	// Kill moments: the first while the fan-out is being planned (children
	// created), or sooner once a random share of up to half the messages has
	// gone out (the reduced fan-out can be done in under a second); the
	// others when a random share of the messages has gone out.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	firstKill := time.Duration(100+rng.IntN(1400)) * time.Millisecond
	firstShare := int((0.05 + 0.45*rng.Float64()) * float64(users))
	shares := make([]float64, kills-1)
	for i := range shares {
		shares[i] = 0.05 + 0.9*rng.Float64()
	}
	slices.Sort(shares)

	n := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: "fanout", Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content:           &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Release {{ .Params.v }}", Text: "Hi {{ .Recipient.Name }}, {{ .Params.v }} is out."}},
			Params:            bench.JSON(`{"v": "1.2.3"}`),
			RecipientSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": name}},
			ExpiresAfter:      &metav1.Duration{Duration: time.Hour},
		},
	}
	start := time.Now()
	if err := plane.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	follow := bench.Follow(outbox)
	var killedAt []string
	kill := func() {
		m := leader(ctx, managers)
		lines := follow.Lines()
		stop(m)
		killedAt = append(killedAt, fmt.Sprintf("%.1fs/%d msgs", time.Since(start).Seconds(), lines))
		// A random pause before the restart, as a crash-looping pod has.
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_ = bench.Poll(ctx, firstKill, 10*time.Millisecond, func() error {
		if follow.Lines() < firstShare {
			return fmt.Errorf("waiting for %d messages", firstShare)
		}
		return nil
	})
	kill()
	for _, share := range shares {
		want := int(share * float64(users))
		// Bounded: if progress stalls, kill anyway after two minutes.
		_ = bench.Poll(ctx, 2*time.Minute, 10*time.Millisecond, func() error {
			if follow.Lines() < want {
				return fmt.Errorf("waiting for %d messages", want)
			}
			return nil
		})
		kill()
	}
	figure(t, "kills", killedAt)

	parent := waitFinished(t, ns, "fanout", scale(4*time.Minute, 10*time.Minute))
	elapsed := time.Since(start)
	entries, torn, err := bench.ReadOutbox(outbox)
	if err != nil {
		t.Fatal(err)
	}
	tally := bench.TallyByAddress(entries)
	var missing []string
	for i := range users {
		if tally.Received[bench.UserEmail(name, i)] == 0 {
			missing = append(missing, bench.UserEmail(name, i))
		}
	}
	dupPct := 100 * float64(tally.Duplicates) / float64(users)
	figure(t, "recipients", users)
	figure(t, "messages_received", tally.Lines)
	figure(t, "duplicates", tally.Duplicates)
	figure(t, "duplicate_pct", fmt.Sprintf("%.2f", dupPct))
	figure(t, "torn_outbox_lines", torn)
	figure(t, "missing_recipients", len(missing))
	figure(t, "seconds_to_finish", fmt.Sprintf("%.1f", elapsed.Seconds()))
	starts := 0
	for _, m := range managers {
		starts += m.Starts
	}
	figure(t, "manager_starts", starts)

	if len(missing) > 0 {
		t.Errorf("%d recipients received nothing, e.g. %v", len(missing), head(missing, 5))
	}
	if parent.Status.Phase != v1alpha1.PhaseSent || parent.Status.Summary.Sent != int32(users) || parent.Status.Summary.Pending != 0 {
		t.Errorf("parent finished %s with summary %+v, want Sent with %d sent", parent.Status.Phase, parent.Status.Summary, users)
	}
	if ds, ns := nonTerminal(t, ns); len(ds) > 0 || len(ns) > 0 {
		t.Errorf("left non-terminal: %d deliveries %v; %d notifications %v", len(ds), head(ds, 5), len(ns), head(ns, 5))
	}
	return tally.Duplicates
}

// leader is the manager that holds the Lease (leader election's own gauge),
// or the only one.
func leader(ctx context.Context, managers []*bench.Manager) *bench.Manager {
	if len(managers) == 1 {
		return managers[0]
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range managers {
			if ms, err := m.Metrics(ctx); err == nil && ms.Sum("leader_election_master_status", nil) > 0 {
				return m
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return managers[0]
}
