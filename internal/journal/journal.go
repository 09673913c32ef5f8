// Package journal keeps, on local disk, the sends a provider accepted until
// their outcomes are written to status. A status write costs tens of
// milliseconds and records a whole Notification; a journal line costs a
// share of one fsync. With a journal, a send counts as recorded (and frees
// its place among the provider's unrecorded sends) once its line is on disk,
// and a manager restarted after a crash replays the journal into status
// before it sends anything, so what a SIGKILL can send twice is the sends
// in flight at that moment, not the outcomes waiting for a status write.
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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// queued and early are where-values of jobs not yet in a segment: appended
// and waiting for the writer, or recorded in status before that.
const (
	queued = -1
	early  = -2
)

// Journal is the on-disk record of accepted sends. Append is safe from any
// goroutine; Run writes.
type Journal struct {
	dir          string
	segmentLines int
	// Durable is told of each appended outcome once it is on disk: the
	// dispatcher's Recorded, which frees its place among unrecorded sends.
	Durable func(dispatch.Outcome)

	mu    sync.Mutex
	batch []dispatch.Outcome
	wake  chan struct{}
	// where maps a job to the segment holding it until status records it;
	// pending counts, per segment, the jobs not yet in status.
	where   map[string]int
	pending map[int]int

	// seg and f, the segment being written, change only in Run, under mu
	// (Recorded reads them); lines is Run's alone.
	seg   int
	f     *os.File
	lines int
}

// Open reads the journal in dir (created if missing) and returns it with
// the outcomes it holds that status may not: the caller feeds them to the
// status writer before anything is sent, and reports each, once in status,
// with Recorded.
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

// Append queues a Sent outcome for the disk. Other outcomes hold no place
// among unrecorded sends, and an Alone one (its Notification's only
// delivery) goes to status at once, without waiting for others to share
// the write: an fsync would not record it much sooner. Append never blocks
// on I/O.
func (j *Journal) Append(o dispatch.Outcome) {
	if !journaled(o) {
		return
	}
	j.mu.Lock()
	j.batch = append(j.batch, o)
	j.where[o.JobID] = queued
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
	seg, ok := j.where[o.JobID]
	switch {
	case !ok:
	case seg == queued:
		j.where[o.JobID] = early
	case seg >= 0:
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

// Run writes appended outcomes in batches, one fsync per batch, until ctx
// ends; then it writes what is left and closes the segment. Its signature
// fits manager.RunnableFunc.
func (j *Journal) Run(ctx context.Context) error {
	if err := j.rotate(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			err := j.flush()
			j.mu.Lock()
			cerr := j.f.Close()
			j.f = nil
			j.dropIfDone(j.seg)
			j.mu.Unlock()
			if err == nil {
				err = cerr
			}
			return err
		case <-j.wake:
			if err := j.flush(); err != nil {
				return err
			}
		}
	}
}

// flush writes the queued outcomes to the current segment and syncs it,
// then tells Durable of each.
func (j *Journal) flush() error {
	j.mu.Lock()
	batch := j.batch
	j.batch = nil
	j.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	w := bufio.NewWriter(j.f)
	for _, o := range batch {
		b, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		_, _ = w.Write(b)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	for _, o := range batch {
		if j.where[o.JobID] == early {
			delete(j.where, o.JobID) // status was faster than the disk
			continue
		}
		j.where[o.JobID] = j.seg
		j.pending[j.seg]++
	}
	j.lines += len(batch)
	j.mu.Unlock()
	if j.Durable != nil {
		for _, o := range batch {
			j.Durable(o)
		}
	}
	if j.lines >= j.segmentLines {
		return j.rotate()
	}
	return nil
}

// rotate closes the current segment (deleting it if status holds all of
// it) and starts the next.
func (j *Journal) rotate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		if err := j.f.Close(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.f = nil
		j.dropIfDone(j.seg)
	}
	f, err := os.OpenFile(j.path(j.seg+1), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.seg, j.f, j.lines = j.seg+1, f, 0
	return nil
}
