package dispatch

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/herald-dev/herald/senders"
)

type nopSender struct{}

func (nopSender) Send(context.Context, senders.Address, *senders.Message) (senders.Result, error) {
	return senders.Result{}, nil
}

// BenchmarkDispatch measures the hot path: submit, send through a no-op
// provider, report, and the caller confirming the outcome recorded (which
// frees its place among the unrecorded sends).
func BenchmarkDispatch(b *testing.B) {
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	msg := &senders.Message{ID: "m"}
	var done atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	var d *Dispatcher
	d = New(Options{DedupWindow: -1, Reporter: func(o Outcome) {
		go d.Recorded(o) // as the reconciler does, after its status write
		if o.State.Terminal() && done.Add(1) == n {
			close(all)
		}
	}})
	defer d.Stop()
	d.Ensure("bench", Settings{}, nopSender{})

	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		if err := d.Submit("bench", Job{ID: id, Msg: msg}); err != nil {
			b.Fatal(err)
		}
	}
	<-all
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
