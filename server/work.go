package server

import (
	"sync/atomic"
	"time"
)

// Work is a fixed amount of CPU work: a number of iterations of a small
// integer loop, calibrated once so that it takes about the asked duration on
// an idle core. Tests of the regression gate add it per delivery to make a
// known slowdown; the amount is fixed by the iteration count, so a busy
// machine makes it take longer, not shorter.
type Work struct {
	iters int
}

// workSink keeps the loop from being optimised away.
var workSink atomic.Uint64

// NewWork calibrates a Work of about d: the fastest of a few short timed
// runs of the loop gives the iterations per nanosecond of an unhindered core.
func NewWork(d time.Duration) *Work {
	const probe = 1 << 16
	best := time.Duration(1<<63 - 1)
	for range 7 {
		t := time.Now()
		spin(probe)
		best = min(best, time.Since(t))
	}
	best = max(best, time.Nanosecond)
	return &Work{iters: max(1, int(float64(probe)*float64(d)/float64(best)))}
}

// Iterations is the loop count of one Do.
func (w *Work) Iterations() int { return w.iters }

// Do performs the work once.
func (w *Work) Do() { spin(w.iters) }

func spin(n int) {
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	if x == 0 { // never true: keeps x live without a shared write
		workSink.Add(1)
	}
}
