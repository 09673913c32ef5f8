package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/senders"
)

func sent(i int) dispatch.Outcome {
	return dispatch.Outcome{Key: "ChannelProvider/ns/log", Provider: "ChannelProvider/log", JobID: fmt.Sprintf("uid-1/u/user-%03d/email", i),
		Notification: senders.NotificationRef{Namespace: "ns", Name: "n", UID: "uid-1"}, Attempt: 1, Attempted: true,
		Start: time.Unix(1700000000, 0).UTC(), End: time.Unix(1700000001, 0).UTC(), State: dispatch.Sent,
		Result: senders.Result{ProviderMessageID: fmt.Sprintf("msg-%d", i)}}
}

// running starts j's writer and returns a stop that waits for it.
func running(t *testing.T, j *Journal) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// start opens the journal in dir and starts its writer.
func start(t *testing.T, dir string, segmentLines int) (*Journal, *durable, func()) {
	t.Helper()
	j, _, err := Open(dir, segmentLines)
	if err != nil {
		t.Fatal(err)
	}
	d := &durable{}
	j.Durable = d.add
	return j, d, running(t, j)
}

// write journals outcomes in dir and stops, as a process killed once they
// are on disk.
func write(t *testing.T, dir string, outcomes ...dispatch.Outcome) {
	t.Helper()
	j, d, stop := start(t, dir, 0)
	for _, o := range outcomes {
		j.Append(o)
	}
	d.wait(t, len(outcomes))
	stop()
}

// durable collects what the journal reports on disk.
type durable struct {
	mu  sync.Mutex
	ids []string
}

func (d *durable) add(o dispatch.Outcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, o.JobID)
}

func (d *durable) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		got := len(d.ids)
		d.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d outcomes reported durable", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// pendingCount is the number of journaled outcomes status does not hold yet.
func pendingCount(j *Journal) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, c := range j.pending {
		n += c
	}
	return n
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// A crash after the disk and before status: a new process gets back every
// journaled send, as it was: only the Sent outcomes of a fan-out are journaled.
func TestReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	j, d, stop := start(t, dir, 0)
	for i := range 5 {
		j.Append(sent(i))
	}
	failed := sent(9)
	failed.State = dispatch.Failed
	j.Append(failed) // holds no place among unrecorded sends: not journaled
	alone := sent(8)
	alone.Alone = true
	j.Append(alone) // goes to status at once: not journaled
	d.wait(t, 5)
	j.Recorded(sent(0)) // status holds this one
	stop()              // as good as a kill: the lines are synced

	_, replay, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range replay {
		ids = append(ids, o.JobID)
	}
	// Recorded only forgets in memory: a line on disk is replayed until its
	// whole segment is in status, and replaying a recorded one changes
	// nothing (ledger.Apply is idempotent).
	want := []string{sent(0).JobID, sent(1).JobID, sent(2).JobID, sent(3).JobID, sent(4).JobID}
	if !slices.Equal(ids, want) {
		t.Fatalf("replayed %v, want %v", ids, want)
	}
	if got := replay[3]; got != sent(3) {
		t.Errorf("replayed %+v, want %+v", got, sent(3))
	}
}

// The process died in the middle of a line: the line is skipped, the rest
// replayed.
func TestTornLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, sent(1))
	seg := filepath.Join(dir, files(t, dir)[0])
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"Key":"ChannelProvider/ns/log","JobID":"uid-1/u/user-0`)
	_ = f.Close()
	_, replay, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(replay) != 1 || replay[0].JobID != sent(1).JobID {
		t.Fatalf("replayed %+v, want only %s", replay, sent(1).JobID)
	}
}

// Segments roll over and are deleted once status holds all of them, also
// when status was faster than the disk; the journal does not grow with
// what has been recorded.
func TestSegmentsDeletedOnceRecorded(t *testing.T) {
	dir := t.TempDir()
	j, d, stop := start(t, dir, 3)
	defer stop()
	for i := range 7 {
		j.Append(sent(i))
		d.wait(t, i+1) // segments of 3 lines: the third line starts the next
	}
	if got := files(t, dir); len(got) != 3 {
		t.Fatalf("segments %v, want 3 (3 + 3 + 1 lines)", got)
	}
	for i := range 6 {
		j.Recorded(sent(i))
	}
	if got := files(t, dir); !slices.Equal(got, []string{"000003.jsonl"}) {
		t.Errorf("segments %v, want only the one being written", got)
	}
	if got := pendingCount(j); got != 1 {
		t.Errorf("pending %d, want 1", got)
	}
	// Recorded before an fsync covers it.
	j.Append(sent(7))
	j.Recorded(sent(7))
	d.wait(t, 8)
	j.Recorded(sent(6))
	if got := pendingCount(j); got != 0 {
		t.Errorf("pending %d after everything was recorded, want 0", got)
	}
}

// After a replay, the old segments go once status holds what they hold,
// and a clean stop with everything recorded leaves nothing behind.
func TestReplayedSegmentsDropped(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, sent(1), sent(2))

	j, replay, err := Open(dir, 0)
	if err != nil || len(replay) != 2 {
		t.Fatalf("replay: %v, %d outcomes", err, len(replay))
	}
	stop := running(t, j)
	for _, o := range replay {
		j.Recorded(o)
	}
	stop()
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("segments %v left after everything was recorded and the journal stopped", got)
	}
}

// A process killed right after Append returned: the line is already in
// the file (the kernel keeps it whatever becomes of the process), though
// no fsync has covered it and so it does not count as durable yet.
func TestAppendWritesBeforeSync(t *testing.T) {
	dir := t.TempDir()
	j, _, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := &durable{}
	j.Durable = d.add
	j.Append(sent(1)) // Run is not running: nothing syncs
	if len(d.ids) != 0 {
		t.Fatalf("durable %v before any fsync", d.ids)
	}
	_, replay, err := Open(dir, 0) // the restarted process
	if err != nil {
		t.Fatal(err)
	}
	if len(replay) != 1 || replay[0].JobID != sent(1).JobID {
		t.Fatalf("replayed %+v, want %s", replay, sent(1).JobID)
	}
}
