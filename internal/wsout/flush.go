package wsout

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A flushSet is the flusher goroutines of one Options: on a saturated
// machine (see busy.go) a push to a connection with nothing queued does not
// wake the connection's writer goroutine; the connection joins a flusher's
// list instead, and the flusher, FlushWindow after the first connection
// joined, writes every listed connection's queue with one non-blocking
// writev each, one connection after another on its own goroutine.
//
// Why: at 100 k deliveries/s here (5,000 clients each receiving 20
// messages/s) a writer goroutine's wake-up, park and channel operations per
// push cost a quarter of the server's CPU, and that CPU is what the machine
// lacks when it is saturated. A flusher pays one wake-up per window for
// hundreds of connections, and the window lets a connection's pushes
// gather into one write. A connection a flusher cannot finish (the kernel
// takes part of a write, or its queue holds more than flushMaxBytes) goes
// to its writer goroutine, which may block; a flusher never does.
type flushSet struct {
	window   time.Duration
	idleExit time.Duration // a flusher with nothing listed for this long exits
	shards   []flushShard
	next     atomic.Uint32
}

type flushShard struct {
	set     *flushSet
	mu      sync.Mutex
	ws      []*Writer
	wake    chan struct{}
	started bool
}

// flushMaxBytes bounds a flusher's write: a larger queue goes to the
// connection's writer goroutine, so a flusher never copies a big tail.
const flushMaxBytes = 64 << 10

// flusherIdleExit is how long a flusher waits for work before it exits (the
// next listed connection starts it again): flushers are per Options, and a
// server that made many Frontends, or a machine that was saturated once,
// should not keep their goroutines for good.
const flusherIdleExit = 10 * time.Second

func newFlushSet(window time.Duration) *flushSet {
	s := &flushSet{window: window, idleExit: flusherIdleExit, shards: make([]flushShard, runtime.GOMAXPROCS(0))}
	for i := range s.shards {
		s.shards[i].set = s
		s.shards[i].wake = make(chan struct{}, 1)
	}
	return s
}

// assign spreads connections over the flushers round robin.
func (s *flushSet) assign() uint32 { return s.next.Add(1) % uint32(len(s.shards)) }

// schedule lists w for its flusher's next round; w.scheduled is set.
func (s *flushSet) schedule(w *Writer) {
	sh := &s.shards[w.shard]
	sh.mu.Lock()
	if !sh.started {
		sh.started = true
		go sh.run()
	}
	sh.ws = append(sh.ws, w)
	first := len(sh.ws) == 1
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
}

// run is a flusher goroutine; it parks while its list is empty and exits
// after idleExit of that.
func (sh *flushShard) run() {
	var spare []*Writer
	idle := time.NewTimer(sh.set.idleExit)
	defer idle.Stop()
	for {
		select {
		case <-sh.wake:
		case <-idle.C:
			sh.mu.Lock()
			if len(sh.ws) == 0 {
				sh.started = false
				sh.mu.Unlock()
				return
			}
			sh.mu.Unlock()
			idle.Reset(sh.set.idleExit)
			continue // the wake of the first listed connection is in the channel
		}
		idle.Reset(sh.set.idleExit)
		time.Sleep(sh.set.window)
		sh.mu.Lock()
		ws := sh.ws
		sh.ws = spare[:0]
		sh.mu.Unlock()
		for i, w := range ws {
			w.flush()
			ws[i] = nil
		}
		spare = ws
	}
}

// flush writes w's queue for its flusher without blocking, or hands it to
// w's writer goroutine when that one owns the socket, has control frames or
// a tail to send first, the connection is closing, or the queue is large.
func (w *Writer) flush() {
	w.mu.Lock()
	w.scheduled = false
	if len(w.queue) == 0 {
		w.mu.Unlock()
		return // the writer goroutine took it
	}
	if w.writing || w.closed || w.pend != nil || len(w.ctrl) > 0 || w.queued > flushMaxBytes {
		w.mu.Unlock()
		w.signal()
		return
	}
	batch := w.queue
	w.queue, w.flushSpare = w.flushSpare[:0], nil
	w.queued = 0
	w.writing = true
	w.mu.Unlock()

	bp := outBufs.Get().(*[]byte)
	b, frames, pushes, packages := w.pack((*bp)[:0], batch)
	clear(batch)
	flushWrites.Add(1)
	err := w.sock.arm(w.opts.WriteTimeout)
	var rest []byte
	if err == nil {
		rest, err = w.sock.raw.write(b)
	}
	*bp = b[:0]
	outBufs.Put(bp)
	w.flushSpare = batch[:0] // only this flusher uses it, and only while it owns the socket
	w.endWrite(rest, err)
	if err == nil {
		w.count(frames, packages, pushes)
	}
}
