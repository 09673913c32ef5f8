package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	logsender "github.com/herald-dev/herald/senders/log"
)

// ReadOutbox returns every whole line of dir's outbox. A line cut short by a
// SIGKILL mid-write is skipped and counted in torn.
func ReadOutbox(dir string) (entries []logsender.Entry, torn int, err error) {
	b, err := os.ReadFile(filepath.Join(dir, logsender.OutboxFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var e logsender.Entry
		if json.Unmarshal(line, &e) != nil {
			torn++
			continue
		}
		entries = append(entries, e)
	}
	return entries, torn, nil
}

// CountOutbox counts the outbox's lines without decoding them.
func CountOutbox(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, logsender.OutboxFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return bytes.Count(b, []byte{'\n'}), err
}

// Tally is how many messages each address received.
type Tally struct {
	// Received counts lines per recipient address.
	Received map[string]int
	// Duplicates is lines beyond the first per address.
	Duplicates int
	Lines      int
}

// TallyByAddress counts outbox entries by the recipient's address.
func TallyByAddress(entries []logsender.Entry) Tally {
	t := Tally{Received: map[string]int{}}
	for _, e := range entries {
		a := e.To.Email + e.To.Phone + e.To.Token
		t.Received[a]++
		if t.Received[a] > 1 {
			t.Duplicates++
		}
		t.Lines++
	}
	return t
}

// Follower counts the outbox's lines as they are appended, reading only
// what is new each time.
type Follower struct {
	path   string
	offset int64
	lines  int
}

// Follow follows dir's outbox.
func Follow(dir string) *Follower {
	return &Follower{path: filepath.Join(dir, logsender.OutboxFile)}
}

// Lines reads what was appended and returns the number of lines so far.
func (f *Follower) Lines() int {
	fh, err := os.Open(f.path)
	if err != nil {
		return f.lines
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, 0); err != nil {
		return f.lines
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := fh.Read(buf)
		f.lines += bytes.Count(buf[:n], []byte{'\n'})
		f.offset += int64(n)
		if err != nil || n == 0 {
			return f.lines
		}
	}
}
