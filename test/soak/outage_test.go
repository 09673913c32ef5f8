package soak

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/hack/bench"
)

// TestAPIServerOutage stops the kube-apiserver (etcd keeps running) in the
// middle of a fan-out and a stream of single notifications, starts it again
// on the same address, and checks the manager — never restarted — finishes
// everything and every recipient got its message.
func TestAPIServerOutage(t *testing.T) {
	ctx := context.Background()
	users := scale(500, 2000)
	singles := scale(100, 300)
	outage := scale(10*time.Second, 30*time.Second)
	ns := namespace(t, "soak-outage")
	m, outbox := startManager(t, "outage")
	if err := bench.CreateUsers(ctx, plane.Client, ns, "outage", users, 32); err != nil {
		t.Fatal(err)
	}
	if err := bench.WaitUsersReady(ctx, plane.Client, ns, users, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := bench.LogProvider(ctx, plane.Client, ns, v1alpha1.ChannelEmail, 16); err != nil {
		t.Fatal(err)
	}
	fan := &v1alpha1.Notification{
		ObjectMeta: metav1.ObjectMeta{Name: "fanout", Namespace: ns},
		Spec: v1alpha1.NotificationSpec{
			Content:           &v1alpha1.ChannelContent{Email: &v1alpha1.EmailContent{Subject: "Maintenance", Text: "Hi {{ .Recipient.Name }}"}},
			RecipientSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "outage"}},
		},
	}
	// Half the singles before the outage, half after it.
	create := func(from, to int) {
		if err := bench.Parallel(ctx, to-from, 8, func(ctx context.Context, i int) error {
			return plane.Client.Create(ctx, bench.EmailNotification(ns, fmt.Sprintf("single-%04d", from+i), fmt.Sprintf("single-%04d@example.com", from+i)))
		}); err != nil {
			t.Fatal(err)
		}
	}
	create(0, singles/2)
	if err := plane.Client.Create(ctx, fan); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the fan-out is being planned and sent
	before := bench.Follow(outbox).Lines()
	stopAt := time.Now()
	// A stop that outlasts its grace period is a SIGKILL; either way it is down.
	_ = plane.StopAPIServer()
	time.Sleep(time.Until(stopAt.Add(outage)))
	down := time.Since(stopAt)
	if err := plane.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	create(singles/2, singles)

	waitFinished(t, ns, "fanout", 3*time.Minute)
	for i := range singles {
		waitFinished(t, ns, fmt.Sprintf("single-%04d", i), time.Minute)
	}
	recovered := time.Since(stopAt) - down
	entries, _, err := bench.ReadOutbox(outbox)
	if err != nil {
		t.Fatal(err)
	}
	tally := bench.TallyByAddress(entries)
	var missing []string
	for i := range users {
		if tally.Received[bench.UserEmail("outage", i)] == 0 {
			missing = append(missing, bench.UserEmail("outage", i))
		}
	}
	for i := range singles {
		if a := fmt.Sprintf("single-%04d@example.com", i); tally.Received[a] == 0 {
			missing = append(missing, a)
		}
	}
	figure(t, "outage_seconds", fmt.Sprintf("%.1f", down.Seconds()))
	figure(t, "messages_before_outage", before)
	figure(t, "messages_expected", users+singles)
	figure(t, "messages_received", tally.Lines)
	figure(t, "duplicates", tally.Duplicates)
	figure(t, "missing", len(missing))
	figure(t, "seconds_from_restart_to_all_finished", fmt.Sprintf("%.1f", recovered.Seconds()))
	figure(t, "manager_starts", m.Starts)

	if !m.Running() {
		t.Errorf("the manager exited during the outage: %v", m.ExitErr())
	}
	if len(missing) > 0 {
		t.Errorf("%d recipients received nothing, e.g. %v", len(missing), head(missing, 5))
	}
	if ds, ns := nonTerminal(t, ns); len(ds) > 0 || len(ns) > 0 {
		t.Errorf("left non-terminal: %d deliveries %v; %d notifications %v", len(ds), head(ds, 5), len(ns), head(ns, 5))
	}
}
