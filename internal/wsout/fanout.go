package wsout

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Fanout runs part over [0, n) and returns when all of it is done. While
// o.Load does not say saturated, chunks beyond the first go to fan-out
// workers that are idle at that moment (one worker per extra P) and the
// caller runs the first chunk itself; on a saturated machine, with one P, or
// for fewer than fanoutMin items it is part(0, n). A chunk no worker is free
// for runs on the caller's goroutine, so Fanout never queues behind another
// broadcast.
//
// Why: on an idle machine a push to a connection is a direct write (see
// Writer.Enqueue), 10-25 us of loopback TCP each here, and a room's
// broadcast under its lock made them one after another: the hundredth
// member of a room heard a message 1.5-3 ms after the first, while the other
// CPU idled. Splitting the writes over the CPUs halves that. On a saturated
// machine a push only joins a flusher's list, and the other CPUs have no
// time to give. NoFanout turns it off (for A/B runs).
func (o *Options) Fanout(n int, part func(lo, hi int)) {
	k := runtime.GOMAXPROCS(0)
	if o.NoFanout || k < 2 || n < fanoutMin || o.Load.Saturated() {
		part(0, n)
		return
	}
	fanOnce.Do(func() {
		for range k - 1 {
			go fanWorker()
		}
	})
	wg := wgPool.Get().(*sync.WaitGroup)
	chunk := (n + k - 1) / k
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		select {
		case fanJobs <- fanJob{part: part, lo: lo, hi: hi, wg: wg}:
			fanHandoffs.Add(1)
		default: // every worker is busy
			part(lo, hi)
			wg.Done()
		}
	}
	part(0, chunk)
	wg.Wait()
	wgPool.Put(wg)
}

// fanoutMin is the smallest broadcast worth a hand-off: a worker's wake-up
// costs about as much as one or two direct writes.
const fanoutMin = 16

type fanJob struct {
	part   func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup
}

var (
	fanJobs     = make(chan fanJob) // unbuffered: a send succeeds only to a waiting worker
	fanOnce     sync.Once
	fanHandoffs atomic.Uint64 // chunks run by a worker (tests)
	wgPool      = sync.Pool{New: func() any { return new(sync.WaitGroup) }}
)

// fanWorker lives as long as the process: one per extra P, parked on an
// empty channel when idle.
func fanWorker() {
	for j := range fanJobs {
		j.part(j.lo, j.hi)
		j.wg.Done()
	}
}
