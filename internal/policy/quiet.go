package policy

import (
	"sync"
	"time"
)

// quietWindow is a daily wall-clock window in minutes after midnight; end
// before start means it crosses midnight.
type quietWindow struct{ start, end int }

func parseWindow(start, end string) (quietWindow, bool) {
	s, ok1 := parseHHMM(start)
	e, ok2 := parseHHMM(end)
	if !ok1 || !ok2 || s == e {
		return quietWindow{}, false
	}
	return quietWindow{s, e}, true
}

// parseHHMM reads "HH:MM"; admission already checked the pattern, this only
// guards against objects stored before it did.
func parseHHMM(v string) (int, bool) {
	if len(v) != 5 || v[2] != ':' {
		return 0, false
	}
	d := func(c byte) (int, bool) { return int(c - '0'), c >= '0' && c <= '9' }
	h1, a := d(v[0])
	h2, b := d(v[1])
	m1, c := d(v[3])
	m2, e := d(v[4])
	h, m := h1*10+h2, m1*10+m2
	if !a || !b || !c || !e || h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// endAfter reports whether t falls inside the window on the user's wall clock
// and, if so, the first instant after t at which the wall clock reaches the
// window's end. Quiet hours follow the wall clock the user lives by, so on
// DST days the window is an hour shorter or longer in absolute time.
func (w quietWindow) endAfter(t time.Time, loc *time.Location) (time.Time, bool) {
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	var inside bool
	if w.start < w.end {
		inside = m >= w.start && m < w.end
	} else {
		inside = m >= w.start || m < w.end
	}
	if !inside {
		return time.Time{}, false
	}
	y, mo, d := lt.Date()
	if m >= w.end {
		d++ // the window crossed midnight: it ends tomorrow
	}
	return wallTime(y, mo, d, w.end/60, w.end%60, loc, t), true
}

// wallTime is the first instant after `after` when loc's wall clock reads
// hh:mm on the given day, handling the two DST cases time.Date leaves open:
// a wall time skipped by spring-forward (the window then ends at the
// transition, the first instant past the skipped time) and one repeated by
// fall-back (the first occurrence after `after`).
// maxGap bounds the wall-clock time a transition skips (1h for DST, up to a
// day when a zone changes sides of the date line).
const maxGap = 25 * time.Hour

func wallTime(y int, mo time.Month, d, hh, mm int, loc *time.Location, after time.Time) time.Time {
	c := time.Date(y, mo, d, hh, mm, 0, 0, loc)
	if c.Hour() != hh || c.Minute() != mm {
		// Skipped: time.Date normalised c to one side of the transition, by
		// the length of the gap; the transition is the zone boundary next to c.
		start, end := c.ZoneBounds()
		toEnd, fromStart := maxGap+1, maxGap+1
		if !end.IsZero() {
			toEnd = end.Sub(c)
		}
		if !start.IsZero() {
			fromStart = c.Sub(start)
		}
		switch {
		case toEnd <= maxGap && toEnd <= fromStart:
			return end
		case fromStart <= maxGap:
			return start
		}
		return c
	}
	if !c.After(after) {
		// Repeated: time.Date chose the earlier occurrence, which has passed.
		_, off1 := c.Zone()
		_, off2 := after.In(loc).Zone()
		if later := c.Add(time.Duration(off1-off2) * time.Second); later.After(after) {
			if l := later.In(loc); l.Hour() == hh && l.Minute() == mm {
				return later
			}
		}
	}
	return c
}

// locations caches time zones: time.LoadLocation parses zoneinfo on every
// call, which would dominate Decide. Only valid names are stored, so the map
// is bounded by the tz database.
var locations sync.Map // string → *time.Location

// location returns the user's time zone, UTC when unset or invalid (an
// invalid name is reported on the UserPreference by ValidatePreference).
func location(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := loadLocation(name)
	if err != nil {
		return time.UTC
	}
	locations.Store(name, l)
	return l
}

func loadLocation(name string) (*time.Location, error) {
	// "Local" is whatever the manager's host says: not a user's zone.
	if name == "Local" {
		return nil, errLocal
	}
	return time.LoadLocation(name)
}
