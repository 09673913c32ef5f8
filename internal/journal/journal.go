// Package journal keeps, on local disk, the sends a provider accepted until
// their outcomes are written to status. A status write costs tens of
// milliseconds and records a whole Notification; a journal line costs one
// write(2) and a share of one fsync. A manager restarted after a crash
// replays the journal into status before it sends anything.
//
// Two crashes, two bounds. Append writes an outcome's line before it
// returns, so a process crash (SIGKILL, OOM kill, panic) finds in the file
// every send whose outcome had reached the journal: the kernel keeps what
// was written whatever happens to the process. What such a crash sends
// twice is the sends in flight at that moment. A node crash also loses what
// the kernel had not yet flushed; a send therefore counts as recorded (and
// frees its place among the provider's --max-unrecorded-sends) only once
// an fsync covers its line, which Run does behind the writes, never in
// their way.
//
// The journal is local to the process's disk: it covers a restart in place
// (a container restarted in its pod keeps an emptyDir), not a replica that
// takes over on another node; that one re-sends what status does not
// record, within --max-unrecorded-sends.
//
// Lines are JSON outcomes in numbered segment files (000001.jsonl, …). A
// segment is deleted once every outcome in it is in status; a torn last line
// (the process died mid-write) is skipped on replay.
package journal

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/herald-dev/herald/internal/dispatch"
)

// DefaultSegmentLines is how many lines a segment holds before the journal
// starts the next one.
const DefaultSegmentLines = 4096

// Journal is the on-disk record of accepted sends. Append is safe from any
// goroutine; Run syncs.
type Journal struct {
	dir          string
	segmentLines int
	// Durable is told of each appended outcome once an fsync covers it: the
	// dispatcher's Recorded, which frees its place among unrecorded sends.
	Durable func(dispatch.Outcome)

	mu sync.Mutex
	// unsynced are the outcomes written since the last fsync began.
	unsynced []dispatch.Outcome
	wake     chan struct{}
	// err is the first write error; Run returns it.
	err error
	// where maps a job to the segment holding it until status records it;
	// pending counts, per segment, the jobs not yet in status.
	where   map[string]int
	pending map[int]int
	// seg and f are the segment being written (f is nil once Run has
	// stopped); lines is how many lines it holds. full are the segments
	// Append has finished writing and Run has not yet synced and closed.
	seg   int
	f     *os.File
	lines int
	full  []segment
}

type segment struct {
	n int
	f *os.File
}

// Open reads the journal in dir (created if missing), starts a new segment
// and returns the journal with the outcomes it held that status may not:
// the caller feeds them to the status writer before anything is sent, and
// reports each, once in status, with Recorded.
func Open(dir string, segmentLines int) (*Journal, []dispatch.Outcome, error) {
	if segmentLines <= 0 {
		segmentLines = DefaultSegmentLines
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, segmentLines: segmentLines, wake: make(chan struct{}, 1),
		where: map[string]int{}, pending: map[int]int{}}
	segs, err := j.segments()
	if err != nil {
		return nil, nil, err
	}
	var replay []dispatch.Outcome
	for _, seg := range segs {
		b, err := os.ReadFile(j.path(seg))
		if err != nil {
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			var o dispatch.Outcome
			if len(line) == 0 || json.Unmarshal(line, &o) != nil || o.JobID == "" {
				continue // torn by a crash mid-write
			}
			if _, seen := j.where[o.JobID]; seen {
				continue
			}
			o.State = dispatch.Sent // the only state journaled
			j.where[o.JobID] = seg
			j.pending[seg]++
			replay = append(replay, o)
		}
		if j.pending[seg] == 0 {
			_ = os.Remove(j.path(seg))
		}
		j.seg = seg
	}
	f, err := j.create(j.seg + 1)
	if err != nil {
		return nil, nil, err
	}
	j.seg, j.f = j.seg+1, f
	return j, replay, nil
}

// segments lists the segment numbers in dir, oldest first.
func (j *Journal) segments() ([]int, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, name := range names {
		if n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(name), ".jsonl")); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (j *Journal) path(seg int) string {
	return filepath.Join(j.dir, fmt.Sprintf("%06d.jsonl", seg))
}

func (j *Journal) create(seg int) (*os.File, error) {
	f, err := os.OpenFile(j.path(seg), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return f, nil
}

// Append writes a Sent outcome's line to the current segment before it
// returns (one write(2), no fsync), so a process crash from then on does
// not lose it. Other outcomes hold no place among unrecorded sends, and an
// Alone one (its Notification's only delivery) goes to status at once,
// without waiting for others to share the write: the journal would not
// record it much sooner. A write error is Run's to return; the outcome then
// never counts as durable.
func (j *Journal) Append(o dispatch.Outcome) {
	if !journaled(o) {
		return
	}
	line, err := json.Marshal(o)
	j.mu.Lock()
	if err == nil && j.f == nil {
		err = errors.New("stopped")
	}
	if err == nil {
		_, err = j.f.Write(append(line, '\n'))
	}
	if err != nil {
		j.err = cmp.Or(j.err, fmt.Errorf("journal: %w", err))
	} else {
		j.where[o.JobID] = j.seg
		j.pending[j.seg]++
		j.unsynced = append(j.unsynced, o)
		if j.lines++; j.lines >= j.segmentLines {
			j.rotate()
		}
	}
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Recorded tells the journal that status now holds o: its line is no longer
// needed, and a segment whose lines are all in status is deleted.
func (j *Journal) Recorded(o dispatch.Outcome) {
	if !journaled(o) {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if seg, ok := j.where[o.JobID]; ok {
		delete(j.where, o.JobID)
		j.pending[seg]--
		j.dropIfDone(seg)
	}
}

func journaled(o dispatch.Outcome) bool { return o.State == dispatch.Sent && !o.Alone }

// dropIfDone deletes seg when status holds all of it and it is not the
// segment being written. j.mu is held.
func (j *Journal) dropIfDone(seg int) {
	if j.pending[seg] > 0 || (seg == j.seg && j.f != nil) {
		return
	}
	delete(j.pending, seg)
	_ = os.Remove(j.path(seg))
}

// rotate starts the next segment; Run syncs and closes the full one. j.mu
// is held.
func (j *Journal) rotate() {
	next, err := j.create(j.seg + 1)
	if err != nil {
		j.err = cmp.Or(j.err, err)
		return
	}
	j.full = append(j.full, segment{j.seg, j.f})
	j.seg, j.f, j.lines = j.seg+1, next, 0
}

// Run syncs what Append wrote, one fsync for all the lines written while
// the previous one ran, and tells Durable of them. When ctx ends it syncs
// what is left and closes the segment. A write or sync error ends it: the
// manager stops rather than lose the crash bound. Its signature fits
// manager.RunnableFunc.
func (j *Journal) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return j.sync(true)
		case <-j.wake:
			if err := j.sync(false); err != nil {
				return err
			}
		}
	}
}

// sync fsyncs the lines written so far, closing the full segments, and
// reports them durable; when last is set it closes the current segment too.
func (j *Journal) sync(last bool) error {
	j.mu.Lock()
	batch, full, cur := j.unsynced, j.full, segment{j.seg, j.f}
	j.unsynced, j.full = nil, nil
	err := j.err
	if last {
		j.f = nil
	}
	j.mu.Unlock()
	if err != nil {
		return err
	}
	switch {
	case cur.f == nil:
	case last:
		full = append(full, cur)
	case len(batch) > 0:
		if err := cur.f.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	for _, s := range full {
		if err := errors.Join(s.f.Sync(), s.f.Close()); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.mu.Lock()
		j.dropIfDone(s.n)
		j.mu.Unlock()
	}
	if j.Durable != nil {
		for _, o := range batch {
			j.Durable(o)
		}
	}
	return nil
}
