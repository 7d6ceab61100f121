// Package wsout is the outbound half of a server websocket that carries
// pomelo packages: a byte-capped queue, direct non-blocking writes to an idle
// connection, and one coalescing writer goroutine. Reads stay with
// gorilla/websocket; writes do not: the Writer frames its own binary messages
// (server frames carry no mask) and writes them to the socket itself.
//
// The reference server's sessions (server/connector) and the bare
// calibration server (bench/calibrate) both use it, so the machine's ceiling
// is measured with the same write technique as the server it judges.
//
// A package goes out in one of three ways:
//
//   - Direct: when the machine has CPU to spare (busy.go), nothing is queued,
//     nothing is being written and the connection wrote nothing for
//     Options.DirectWriteGap, Enqueue writes the package as one frame with
//     one non-blocking writev on the caller's goroutine. Under light load
//     that spares the writer goroutine's wake-up and park per push, which on
//     a 2-core machine costs as much CPU as the chat logic. A write the
//     kernel takes only in part leaves its tail for the writer goroutine, so
//     a slow client never blocks the caller.
//   - Flushed: on a saturated machine the package joins the connection's
//     queue and the connection joins a flusher's list; the flusher writes it
//     within Options.FlushWindow, together with whatever else was queued
//     meanwhile, without blocking (flush.go).
//   - Queued: otherwise the package joins a byte-capped queue that the writer
//     goroutine drains, packing everything queued into as few frames as it
//     can and writing them with one syscall (see loop for its load-only
//     coalescing).
//
// A writing flag under the lock makes the socket's owner exclusive (a direct
// write, a flusher or the writer goroutine, never two), which keeps frames
// whole and packages in Enqueue order.
//
// Fanout (fanout.go) spreads one broadcast's Enqueues, hence its direct
// writes, over the CPUs while the machine has CPU to spare.
package wsout

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Options configure a Writer. Zero values mean the documented defaults.
type Options struct {
	WriteTimeout   time.Duration // longest a write may make no progress (each 64 KiB chunk gets its own deadline, between WriteTimeout/2 and WriteTimeout) before the connection is closed as a slow consumer; default 3s
	CloseTimeout   time.Duration // once closing, longest what is left (tail, control frames, kick, close frame) may take before the socket is closed; default 1s
	MaxQueueBytes  int           // queued bytes past which the connection is closed as a slow consumer; default 4 MiB
	MaxFrameBytes  int           // pack packages into frames up to this size; default 64 KiB
	CoalesceMax    time.Duration // longest wait before the next flush when the writer is behind; default 2ms; negative: never wait
	DirectWriteGap time.Duration // write at once on the caller's goroutine when the connection wrote nothing for this long and has nothing queued; default 1ms; negative: never
	FlushWindow    time.Duration // on a saturated machine, pushes wait up to this long for a flusher instead of waking the writer goroutine; default 1ms; negative: no flushers
	// SlowConsumerKick is written before closing a slow consumer (the
	// pomelo KICK package with the reason); nil: none.
	SlowConsumerKick []byte
	Counters         *Counters // nil: not counted
	// Load says when the machine is saturated: then pushes are not written
	// on the caller's goroutine, flushers write them, and Fanout does not
	// fan out. nil: never saturated, so the behaviour does not depend on the
	// machine's load (library users, tests). The server uses MachineLoad.
	Load *Load
	// NoFanout makes Fanout run every broadcast on the caller's goroutine
	// (for A/B runs); default false: fan out while not saturated.
	NoFanout bool

	defaulted bool      // set by WithDefaults
	flush     *flushSet // set by WithDefaults when FlushWindow > 0
}

// SlowConsumerReason is the close reason of a connection whose queue passed
// MaxQueueBytes.
const SlowConsumerReason = "slow consumer: outbound queue over its byte cap"

// StalledReason is the close reason of a connection whose client took no
// byte for a whole WriteTimeout while the server had data for it.
const StalledReason = "slow consumer: took nothing for a whole write timeout"

// Counters are totals shared by many writers; every field must be set.
type Counters struct {
	Frames, Packages, Pushes *atomic.Uint64 // written: websocket frames, pomelo packages, push packages
	Dropped                  *atomic.Uint64 // packages discarded because the connection was closing or overflowed
	SlowConsumers            *atomic.Uint64 // connections closed because their queue overflowed or their writes stalled
}

// WithDefaults returns o with zero values replaced by the defaults.
func (o Options) WithDefaults() Options {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 3 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = time.Second
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 4 << 20
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 64 << 10
	}
	if o.CoalesceMax == 0 {
		o.CoalesceMax = 2 * time.Millisecond
	}
	if o.DirectWriteGap == 0 {
		o.DirectWriteGap = time.Millisecond
	}
	if o.FlushWindow == 0 {
		o.FlushWindow = time.Millisecond
	}
	if o.FlushWindow > 0 && o.flush == nil {
		o.flush = newFlushSet(o.FlushWindow)
	}
	o.defaulted = true
	return o
}

// defaulted holds, for Options that Start got without WithDefaults, their
// copy with the defaults: one per *Options, so writers sharing Options
// share the flushers too.
var defaulted sync.Map // *Options -> *Options

func withDefaults(o *Options) *Options {
	if o.defaulted {
		return o
	}
	if d, ok := defaulted.Load(o); ok {
		return d.(*Options)
	}
	d := o.WithDefaults()
	got, _ := defaulted.LoadOrStore(o, &d)
	return got.(*Options)
}

// Errors of Enqueue.
var (
	ErrClosed       = errors.New("connection closing")
	ErrSlowConsumer = errors.New(SlowConsumerReason)
)

// Writer is the outbound side of one websocket. The zero value is ready for
// Start.
type Writer struct {
	conn *websocket.Conn
	opts *Options

	mu        sync.Mutex
	queue     [][]byte // packages waiting for the writer; each is read-only
	queued    int      // bytes in queue
	ctrl      [][]byte // complete control frames (pongs) waiting for the writer
	pend      []byte   // unwritten tail of a frame a direct write left; goes out first
	writing   bool     // a direct write or the writer goroutine owns the socket
	lastWrite int64    // monotonic ns when the last write ended (direct-write gate)
	closed    bool     // no more enqueues; the writer drains, sends kick and close, exits
	kick      []byte   // package to send before the close frame, if any
	reason    string   // close reason
	code      int      // websocket close code to send
	wake      chan struct{}
	done      chan struct{} // closed when the writer goroutine has exited
	scheduled bool          // listed with a flusher
	shard     uint32        // which flusher
	// flushSpare is an emptied queue array for the next flush to swap in
	flushSpare [][]byte

	sock sockWriter // owned by whoever holds writing
}

// sockWriter is the writer's side of the socket.
type sockWriter struct {
	nc       net.Conn
	raw      rawWriter // direct non-blocking writes; unusable when the conn has no fd
	deadline time.Time // write deadline last set on nc
}

// Start attaches w to c and starts its writer goroutine. opts is shared, not
// copied: it must not change, and it should live as long as its writers
// (one Options for many writers). Its zero fields mean their defaults:
// Options from WithDefaults are used as they are; for others Start makes
// the defaulted copy itself, once per *Options. It
// replaces c's ping and close handlers, which would write to the socket
// themselves: pongs go through w, and a close frame from the client ends
// c's reads (the caller then closes w, which answers with its close frame).
func (w *Writer) Start(c *websocket.Conn, opts *Options) {
	w.conn, w.opts = c, withDefaults(opts)
	opts = w.opts
	w.wake = make(chan struct{}, 1)
	w.done = make(chan struct{})
	w.sock.nc = c.NetConn()
	if opts.DirectWriteGap >= 0 || opts.flush != nil {
		w.sock.raw.init(w.sock.nc)
	}
	if opts.flush != nil {
		w.shard = opts.flush.assign()
	}
	c.SetPingHandler(func(data string) error {
		w.enqueueControl(appendFrameHeader(nil, websocket.PongMessage, len(data)), data)
		return nil
	})
	c.SetCloseHandler(func(int, string) error { return nil })
	go w.loop()
}

// Done is closed when the writer goroutine has sent its close frame and
// closed the socket.
func (w *Writer) Done() <-chan struct{} { return w.done }

// directMaxBytes bounds what a direct write takes: larger packages go to the
// writer goroutine, so a broadcaster never copies a big tail.
const directMaxBytes = 16 << 10

var monoEpoch = time.Now()

func monotime() int64 { return int64(time.Since(monoEpoch)) }

// Enqueue queues a complete encoded package without blocking, or writes it at
// once (see the package doc). pkt must not be modified afterwards: a
// broadcast shares one slice between every recipient. If the queue would pass
// MaxQueueBytes, the connection is closed as a slow consumer (after
// SlowConsumerKick) instead of stalling the caller: ErrSlowConsumer. On a
// closing connection it returns ErrClosed.
func (w *Writer) Enqueue(pkt []byte) error { return w.enqueue(pkt, true) }

// EnqueueQueued is Enqueue without the direct write: the package is never
// written on the caller's goroutine (a flusher or the writer goroutine
// writes it). For a caller that fans out to many connections from one
// goroutine for a whole process (a NATS subscription handler), where direct
// writes would put every write of the process on that one goroutine.
func (w *Writer) EnqueueQueued(pkt []byte) error { return w.enqueue(pkt, false) }

func (w *Writer) enqueue(pkt []byte, direct bool) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		if c := w.opts.Counters; c != nil {
			c.Dropped.Add(1)
		}
		return ErrClosed
	}
	sat := w.opts.Load.Saturated()
	if direct && !sat && w.opts.DirectWriteGap >= 0 && w.sock.raw.ok && !w.writing && len(w.queue) == 0 &&
		len(w.ctrl) == 0 && w.pend == nil && len(pkt) > 0 && len(pkt) <= directMaxBytes {
		if now := monotime(); now-w.lastWrite >= int64(w.opts.DirectWriteGap) {
			w.writing = true
			w.mu.Unlock()
			directWrites.Add(1)
			w.writeDirect(pkt)
			return nil
		}
	}
	if w.queued+len(pkt) > w.opts.MaxQueueBytes {
		dropped := len(w.queue) + 1
		w.closeLocked(websocket.ClosePolicyViolation, SlowConsumerReason, w.opts.SlowConsumerKick, true)
		w.mu.Unlock()
		if c := w.opts.Counters; c != nil {
			c.SlowConsumers.Add(1)
			c.Dropped.Add(uint64(dropped))
		}
		return ErrSlowConsumer
	}
	w.queue = append(w.queue, pkt)
	w.queued += len(pkt)
	first := len(w.queue) == 1
	if first && sat && w.opts.flush != nil && w.sock.raw.ok && !w.writing && w.pend == nil && len(w.ctrl) == 0 {
		// a listed connection's flusher takes whatever is queued when it comes
		schedule := !w.scheduled
		w.scheduled = true
		w.mu.Unlock()
		if schedule {
			w.opts.flush.schedule(w)
		}
		return nil
	}
	w.mu.Unlock()
	// The writer takes the whole queue: only an empty one needs a wake-up. A
	// writer woken during a direct write waits for that write's own signal.
	if first {
		w.signal()
	}
	return nil
}

// writeDirect writes pkt as one frame from the caller's goroutine; the
// caller set writing.
func (w *Writer) writeDirect(pkt []byte) {
	err := w.sock.arm(w.opts.WriteTimeout)
	var rest []byte
	if err == nil {
		rest, err = w.sock.raw.writeFrame(pkt)
	}
	w.endWrite(rest, err)
	if err != nil {
		return
	}
	pushes := 0
	if isPush(pkt) {
		pushes = 1
	}
	w.count(1, 1, pushes)
}

// endWrite ends a direct or flusher's non-blocking write: it hands the
// socket back, leaves the tail the kernel refused (rest) to the writer
// goroutine, closes the connection after an error, and wakes the writer
// when it has work.
func (w *Writer) endWrite(rest []byte, err error) {
	w.mu.Lock()
	w.writing = false
	w.lastWrite = monotime()
	w.pend = rest
	if rest != nil {
		partialWrites.Add(1)
	}
	if err != nil {
		w.closeLocked(websocket.CloseAbnormalClosure, "write failed: "+err.Error(), nil, false)
	}
	// A writer woken while this write owned the socket waits for this
	// signal, also when the connection was closed meanwhile (then closeLocked
	// above did not signal): without it the connection never finishes.
	wake := len(w.queue) > 0 || len(w.ctrl) > 0 || rest != nil || w.closed
	w.mu.Unlock()
	if wake {
		w.signal()
	}
}

func (w *Writer) count(frames, packages, pushes int) {
	if c := w.opts.Counters; c != nil {
		c.Frames.Add(uint64(frames))
		c.Packages.Add(uint64(packages))
		c.Pushes.Add(uint64(pushes))
	}
}

// Direct writes, flushers' writes, and direct or flushers' writes the kernel
// took only in part (tests).
var directWrites, flushWrites, partialWrites atomic.Int64

// enqueueControl queues a control frame (header, then payload).
func (w *Writer) enqueueControl(header []byte, payload string) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.ctrl = append(w.ctrl, append(header, payload...))
	wake := len(w.ctrl) == 1
	w.mu.Unlock()
	if wake {
		w.signal()
	}
}

// Close closes the connection after the queued packages are written (best
// effort, bounded by the write timeout), with a websocket close frame
// carrying code and reason. Only the first Close or Kick counts.
func (w *Writer) Close(code int, reason string) {
	w.mu.Lock()
	w.closeLocked(code, reason, nil, false)
	w.mu.Unlock()
}

// Kick drops what is queued, writes kick (a complete package), then a close
// frame with code and reason.
func (w *Writer) Kick(kick []byte, code int, reason string) {
	w.mu.Lock()
	w.closeLocked(code, reason, kick, true)
	w.mu.Unlock()
}

func (w *Writer) closeLocked(code int, reason string, kick []byte, drop bool) {
	if w.closed {
		return
	}
	w.closed, w.code, w.reason, w.kick = true, code, reason, kick
	if drop {
		clear(w.queue)
		w.queue = w.queue[:0]
		w.queued = 0
	}
	if w.writing {
		// Closing bounds what is left to write by CloseTimeout (see finish):
		// a write under way to a full socket (a slow consumer's) would
		// otherwise block for the rest of its WriteTimeout. (A writer that
		// re-arms its deadline right after this may still get WriteTimeout.)
		_ = w.sock.nc.SetWriteDeadline(time.Now().Add(w.opts.CloseTimeout))
	}
	w.signal()
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Reason returns the close reason given to Close or Kick ("" before).
func (w *Writer) Reason() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason
}

// loop is the writer goroutine. It swaps the queue out under the lock and
// writes the whole batch as one websocket message (several pomelo packages
// per frame, which stock clients decode in a loop), split only when a frame
// would pass MaxFrameBytes, all frames in one write.
//
// Under light load it flushes as soon as anything is queued (one push, one
// write: the lowest latency). Under load it coalesces: after a batch of at
// least coalesceMinBatch packages (the writer is falling behind its queue) it
// first yields the processor, so every runnable reader and broadcaster runs
// once and more packages gather, and after larger batches it also waits a
// window that grows with the batch (up to Options.CoalesceMax), so that one
// write syscall carries tens of packages instead of one. The window is
// skipped when the queue holds more than a quarter of its byte cap.
func (w *Writer) loop() {
	defer close(w.done)
	var spare [][]byte
	for range w.wake {
		for {
			w.mu.Lock()
			if w.writing {
				w.mu.Unlock()
				break // a direct write owns the socket; it signals when done
			}
			batch, ctrl, pend := w.queue, w.ctrl, w.pend
			w.queue, w.ctrl, w.pend = spare[:0], nil, nil
			w.queued = 0
			closed := w.closed
			busy := len(batch) > 0 || len(ctrl) > 0 || pend != nil
			w.writing = busy
			w.mu.Unlock()

			n := len(batch)
			if busy {
				if closed {
					w.sock.cut(w.opts.CloseTimeout) // the tail and control frames before the goodbye
				}
				err := w.writeBatch(pend, ctrl, batch)
				w.mu.Lock()
				w.writing = false
				w.lastWrite = monotime()
				w.mu.Unlock()
				if err != nil {
					reason := "write failed: " + err.Error()
					if !closed && errors.Is(err, os.ErrDeadlineExceeded) {
						// The client took nothing for a whole WriteTimeout
						// (write is chunked, each chunk gets its own
						// deadline): it stopped reading.
						reason = StalledReason
						if c := w.opts.Counters; c != nil {
							c.SlowConsumers.Add(1)
						}
					}
					w.Close(websocket.CloseAbnormalClosure, reason)
					closed = true
				}
			}
			clear(batch)
			spare = batch
			if closed {
				w.finish()
				return
			}
			if n < coalesceMinBatch || w.opts.CoalesceMax < 0 {
				break // light load: wait for the next enqueue
			}
			w.coalesce(n)
		}
	}
}

// Coalescing under load (see loop).
const (
	coalesceMinBatch  = 4                     // a batch this large means the writer is behind
	coalesceWindowMin = 16                    // batches this large also wait a window
	coalescePerPkg    = 50 * time.Microsecond // window per package of the last batch
)

// coalesce lets more packages gather before the next flush.
func (w *Writer) coalesce(n int) {
	runtime.Gosched()
	if n < coalesceWindowMin {
		return
	}
	w.mu.Lock()
	full := w.queued > w.opts.MaxQueueBytes/4 || w.closed
	w.mu.Unlock()
	if full {
		return
	}
	time.Sleep(min(time.Duration(n)*coalescePerPkg, w.opts.CoalesceMax))
}

// outBufs recycles the writer's frame buffers: an idle connection holds none.
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeBatch writes a direct write's leftover tail, the control frames, then
// the packages packed into frames of at most MaxFrameBytes, with one write.
func (w *Writer) writeBatch(pend []byte, ctrl, batch [][]byte) error {
	bp := outBufs.Get().(*[]byte)
	b := append((*bp)[:0], pend...)
	for _, c := range ctrl {
		b = append(b, c...)
	}
	b, frames, pushes, packages := w.pack(b, batch)
	err := w.sock.write(b, w.opts.WriteTimeout)
	if cap(b) <= 1<<20 { // let an outsized buffer go
		*bp = b[:0]
		outBufs.Put(bp)
	}
	if err != nil {
		return err
	}
	w.count(frames, packages, pushes)
	return nil
}

// pack appends batch to b as binary frames of at most MaxFrameBytes each.
func (w *Writer) pack(b []byte, batch [][]byte) (_ []byte, frames, pushes, packages int) {
	for len(batch) > 0 {
		size, k := 0, 0
		for k < len(batch) && (k == 0 || size+len(batch[k]) <= w.opts.MaxFrameBytes) {
			size += len(batch[k])
			k++
		}
		b = appendFrameHeader(b, websocket.BinaryMessage, size)
		for _, p := range batch[:k] {
			b = append(b, p...)
			if isPush(p) {
				pushes++
			}
		}
		batch = batch[k:]
		packages += k
		frames++
	}
	return b, frames, pushes, packages
}

// writeChunk is the most a blocking write hands the kernel at once, so
// its deadline measures progress: a client reading slowly renews it chunk
// by chunk, one that stopped reading hits it.
const writeChunk = 64 << 10

// write is a blocking write; each chunk of it is bounded by timeout.
func (s *sockWriter) write(b []byte, timeout time.Duration) error {
	for len(b) > 0 {
		if err := s.arm(timeout); err != nil {
			return err
		}
		n, err := s.nc.Write(b[:min(len(b), writeChunk)])
		b = b[n:]
		if err != nil {
			return err
		}
	}
	return nil
}

// cut moves the write deadline to d from now, earlier than arm would keep it.
func (s *sockWriter) cut(d time.Duration) {
	s.deadline = time.Now().Add(d)
	_ = s.nc.SetWriteDeadline(s.deadline)
}

// arm keeps the write deadline at least timeout/2 away, which spares a timer
// update per write: a write gets between timeout/2 and timeout. A direct
// write never waits, but the runtime refuses any write past the deadline.
func (s *sockWriter) arm(timeout time.Duration) error {
	if now := time.Now(); s.deadline.Sub(now) < timeout/2 {
		s.deadline = now.Add(timeout)
		return s.nc.SetWriteDeadline(s.deadline)
	}
	return nil
}

func isPush(p []byte) bool {
	return len(p) > pomelo.HeaderLen && p[0] == byte(pomelo.Data) && p[pomelo.HeaderLen]>>1&7 == byte(pomelo.Push)
}

// appendFrameHeader appends the header of a final, unmasked (server to
// client) websocket frame of the given opcode and payload length.
func appendFrameHeader(b []byte, opcode int, n int) []byte {
	b = append(b, 0x80|byte(opcode))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// finish sends the kick (if any) and a close frame, then closes the socket so
// the reader returns. The writer goroutine is the socket's only writer by now.
// Everything written after a close, the goodbye included, gets CloseTimeout,
// not WriteTimeout: a slow consumer's socket is full, and waiting the whole
// WriteTimeout on it held the connection, its goroutines and its descriptor
// 10 s after the kick.
func (w *Writer) finish() {
	w.mu.Lock()
	reason, code, kick := w.reason, w.code, w.kick
	w.mu.Unlock()
	deadline := time.Now().Add(w.opts.CloseTimeout)
	_ = w.conn.SetWriteDeadline(deadline)
	if kick != nil {
		_ = w.conn.WriteMessage(websocket.BinaryMessage, kick)
	}
	if len(reason) > 120 { // close frame payloads are capped at 125 bytes
		reason = reason[:120]
	}
	if code == 0 || code == websocket.CloseAbnormalClosure {
		code = websocket.CloseNormalClosure
	}
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	_ = w.conn.Close()
}

var errWriteDirect = errors.New("direct write")
