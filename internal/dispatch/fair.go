package dispatch

import "github.com/herald-dev/herald/api/v1alpha1"

// lanes is the order in which ready jobs leave a queue: critical before
// high before the rest, and within a lane the namespaces take turns, one
// job each, so one namespace's backlog on a shared provider adds at most
// one job per other namespace to anyone's wait.
type lanes [3]lane

// lane is one priority's ready jobs: a FIFO per namespace and the ring of
// namespaces that have any, served in turn.
type lane struct {
	byNS map[string][]*job
	ring []string
	next int
}

func laneOf(j *job) int {
	switch j.Msg.Priority {
	case v1alpha1.PriorityCritical:
		return 0
	case v1alpha1.PriorityHigh:
		return 1
	}
	return 2
}

func (ls *lanes) push(j *job) {
	l := &ls[laneOf(j)]
	if l.byNS == nil {
		l.byNS = map[string][]*job{}
	}
	ns := j.Msg.Notification.Namespace
	if len(l.byNS[ns]) == 0 {
		l.ring = append(l.ring, ns)
	}
	l.byNS[ns] = append(l.byNS[ns], j)
}

// pop takes the next job, or nil when there is none.
func (ls *lanes) pop() *job {
	for i := range ls {
		l := &ls[i]
		if len(l.ring) == 0 {
			continue
		}
		if l.next >= len(l.ring) {
			l.next = 0
		}
		ns := l.ring[l.next]
		fifo := l.byNS[ns]
		j := fifo[0]
		fifo[0] = nil
		if fifo = fifo[1:]; len(fifo) == 0 {
			delete(l.byNS, ns)
			l.ring = append(l.ring[:l.next], l.ring[l.next+1:]...)
		} else {
			l.byNS[ns] = fifo
			l.next++
		}
		return j
	}
	return nil
}

func (ls *lanes) empty() bool {
	for i := range ls {
		if len(ls[i].ring) > 0 {
			return false
		}
	}
	return true
}

// clear drops every ready job.
func (ls *lanes) clear() { *ls = lanes{} }
