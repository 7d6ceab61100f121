package connector

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Session is one client websocket. Application state (UID, Name, Room, Data)
// belongs to the session's reader goroutine: handlers run there, one request
// at a time, so they may read and write it without locks.
//
// Outbound packages go through Enqueue. Reads use gorilla/websocket; writes
// do not: the session frames its own binary messages (server frames carry no
// mask) and writes them to the socket itself, in one of two ways.
//
//   - Direct: when nothing is queued, nothing is being written and the
//     session wrote nothing for Options.DirectWriteGap, Enqueue writes the
//     package as one frame with one non-blocking writev on the caller's
//     goroutine. Under light load that spares the writer goroutine's wake-up
//     and park per push, which on a 2-core machine costs as much CPU as the
//     chat logic. A write the kernel takes only in part leaves its tail for
//     the writer goroutine, so a slow client never blocks the caller.
//   - Queued: otherwise the package joins a byte-capped queue that one writer
//     goroutine drains, packing everything queued into as few frames as it
//     can and writing them with one syscall (see writeLoop for its
//     load-only coalescing).
//
// A writing flag under mu makes the socket's owner exclusive (a direct write
// or the writer goroutine, never both), which keeps frames whole and
// packages in Enqueue order.
type Session struct {
	ID       uint64
	Frontend *Frontend

	// Application state, owned by the reader goroutine.
	UID, Name, Room string
	Data            any

	conn       *websocket.Conn
	remoteAddr string

	mu        sync.Mutex
	queue     [][]byte // packages waiting for the writer; each is read-only
	queued    int      // bytes in queue
	ctrl      [][]byte // complete control frames (pongs) waiting for the writer
	pend      []byte   // unwritten tail of a frame a direct write left; goes out first
	writing   bool     // a direct write or the writer goroutine owns the socket
	lastWrite int64    // monotonic ns when the last write ended (direct-write gate)
	closed    bool     // no more enqueues; the writer drains a kick, if any, and exits
	kick      []byte   // KICK package to send before closing, if any
	reason    string   // why the session was closed by the server
	code      int      // websocket close code to send
	wake      chan struct{}

	out sockWriter // owned by whoever holds writing

	done chan struct{} // closed when the writer has exited

	// For the frontend's sweeper: when the reader last saw a frame (unix ns),
	// whether the handshake is done, and whether the sweeper closed it.
	lastRead  atomic.Int64
	handshook atomic.Bool
	timedOut  atomic.Bool
}

// sockWriter is the session's side of the socket for writes.
type sockWriter struct {
	nc       net.Conn
	raw      rawWriter // direct non-blocking writes; unusable when the conn has no fd
	deadline time.Time // write deadline last set on nc
}

func newSession(f *Frontend, id uint64, c *websocket.Conn) *Session {
	s := &Session{
		ID: id, Frontend: f, conn: c, remoteAddr: c.RemoteAddr().String(),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.out.nc = c.NetConn()
	if f.opts.DirectWriteGap >= 0 {
		s.out.raw.init(s.out.nc)
	}
	// gorilla's default handlers answer pings and close frames by writing to
	// the socket themselves; the session's writer must be its only writer.
	c.SetPingHandler(func(data string) error {
		s.enqueueControl(appendFrameHeader(nil, websocket.PongMessage, len(data)), data)
		return nil
	})
	c.SetCloseHandler(func(int, string) error { return nil }) // readLoop closes with 1000
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() string { return s.remoteAddr }

// directMaxBytes bounds what a direct write takes: larger packages go to the
// writer goroutine, so a broadcaster never copies a big tail.
const directMaxBytes = 16 << 10

var monoEpoch = time.Now()

func monotime() int64 { return int64(time.Since(monoEpoch)) }

// Enqueue queues a complete encoded package for the client without blocking
// (or writes it at once, see Session). pkt must not be modified afterwards: a
// broadcast shares one slice between every recipient. If the queue would pass
// its byte cap, the session is closed as a slow consumer instead of stalling
// the sender. It reports whether the package was queued or written.
func (s *Session) Enqueue(pkt []byte) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.Frontend.metrics.PushesDropped.Add(1)
		return false
	}
	if s.out.raw.ok && !s.writing && len(s.queue) == 0 && len(s.ctrl) == 0 && s.pend == nil &&
		len(pkt) > 0 && len(pkt) <= directMaxBytes {
		if now := monotime(); now-s.lastWrite >= int64(s.Frontend.opts.DirectWriteGap) {
			s.writing = true
			s.mu.Unlock()
			s.writeDirect(pkt)
			return true
		}
	}
	if limit := s.Frontend.opts.MaxQueueBytes; s.queued+len(pkt) > limit {
		dropped := len(s.queue) + 1
		s.closeLocked("slow consumer: outbound queue over its byte cap", true)
		s.mu.Unlock()
		s.Frontend.metrics.SlowConsumers.Add(1)
		s.Frontend.metrics.PushesDropped.Add(uint64(dropped))
		return false
	}
	s.queue = append(s.queue, pkt)
	s.queued += len(pkt)
	first := len(s.queue) == 1
	s.mu.Unlock()
	// The writer takes the whole queue: only an empty one needs a wake-up. A
	// writer woken during a direct write waits for that write's own signal.
	if first {
		s.signal()
	}
	return true
}

// writeDirect writes pkt as one frame from the caller's goroutine; the
// caller set writing.
func (s *Session) writeDirect(pkt []byte) {
	err := s.out.arm(s.Frontend.opts.WriteTimeout)
	var rest []byte
	if err == nil {
		rest, err = s.out.raw.writeFrame(pkt)
	}
	s.mu.Lock()
	s.writing = false
	s.lastWrite = monotime()
	s.pend = rest
	if rest != nil {
		directPartial.Add(1)
	}
	wake := len(s.queue) > 0 || len(s.ctrl) > 0 || rest != nil || s.closed
	s.mu.Unlock()
	if err != nil {
		s.Close(websocket.CloseAbnormalClosure, "write failed: "+err.Error())
		return
	}
	m := s.Frontend.metrics
	m.FramesOut.Add(1)
	m.PackagesOut.Add(1)
	if isPush(pkt) {
		m.PushesDelivered.Add(1)
	}
	if wake {
		s.signal()
	}
}

// enqueueControl queues a control frame (header, then payload).
func (s *Session) enqueueControl(header []byte, payload string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.ctrl = append(s.ctrl, append(header, payload...))
	wake := len(s.ctrl) == 1
	s.mu.Unlock()
	if wake {
		s.signal()
	}
}

// Kick closes the session after sending a KICK package with reason.
func (s *Session) Kick(reason string) {
	s.mu.Lock()
	s.closeLocked(reason, true)
	s.mu.Unlock()
}

// Close closes the session without a KICK, after the queued packages are
// written (best effort, bounded by the write timeout), with a websocket close
// frame carrying code and reason.
func (s *Session) Close(code int, reason string) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.reason = reason
		s.code = code
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Session) closeLocked(reason string, kick bool) {
	if s.closed {
		return
	}
	s.closed = true
	s.reason = reason
	s.code = websocket.ClosePolicyViolation
	clear(s.queue)
	s.queue = s.queue[:0]
	s.queued = 0
	if kick {
		s.kick = pomelo.AppendPackage(nil, pomelo.Kick, kickBody(reason))
	}
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Reason returns why the server closed the session ("" if it did not).
func (s *Session) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// writeLoop is the session's writer goroutine. It swaps the queue out under
// the lock and writes the whole batch as one websocket message (several
// pomelo packages per frame, which stock clients decode in a loop), split
// only when a frame would pass MaxFrameBytes, all frames in one write.
//
// Under light load it flushes as soon as anything is queued (one push, one
// write: the lowest latency). Under load it coalesces: after a batch of at
// least coalesceMinBatch packages (the writer is falling behind its queue) it
// first yields the processor, so every runnable reader and broadcaster runs
// once and more packages gather, and after larger batches it also waits a
// window that grows with the batch (up to Options.CoalesceMax), so that one
// write syscall carries tens of packages instead of one. The window is
// skipped when the queue holds more than a quarter of its byte cap.
func (s *Session) writeLoop() {
	defer close(s.done)
	var spare [][]byte
	opts := &s.Frontend.opts
	for range s.wake {
		for {
			s.mu.Lock()
			if s.writing {
				s.mu.Unlock()
				break // a direct write owns the socket; it signals when done
			}
			batch, ctrl, pend := s.queue, s.ctrl, s.pend
			s.queue, s.ctrl, s.pend = spare[:0], nil, nil
			s.queued = 0
			closed, kick := s.closed, s.kick
			s.kick = nil
			busy := len(batch) > 0 || len(ctrl) > 0 || pend != nil
			s.writing = busy
			s.mu.Unlock()

			n := len(batch)
			if busy {
				err := s.writeBatch(pend, ctrl, batch, opts)
				s.mu.Lock()
				s.writing = false
				s.lastWrite = monotime()
				s.mu.Unlock()
				if err != nil {
					s.Close(websocket.CloseAbnormalClosure, "write failed: "+err.Error())
					closed = true
				}
			}
			clear(batch)
			spare = batch
			if closed {
				s.finish(kick)
				return
			}
			if n < coalesceMinBatch || opts.CoalesceMax < 0 {
				break // light load: wait for the next enqueue
			}
			s.coalesce(n, opts)
		}
	}
}

// Coalescing under load (see writeLoop).
const (
	coalesceMinBatch  = 4                     // a batch this large means the writer is behind
	coalesceWindowMin = 16                    // batches this large also wait a window
	coalescePerPkg    = 50 * time.Microsecond // window per package of the last batch
)

// coalesce lets more packages gather before the next flush.
func (s *Session) coalesce(n int, opts *Options) {
	runtime.Gosched()
	if n < coalesceWindowMin {
		return
	}
	s.mu.Lock()
	full := s.queued > opts.MaxQueueBytes/4 || s.closed
	s.mu.Unlock()
	if full {
		return
	}
	time.Sleep(min(time.Duration(n)*coalescePerPkg, opts.CoalesceMax))
}

// outBufs recycles the writer's frame buffers: an idle session holds none.
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeBatch writes a direct write's leftover tail, the control frames, then
// the packages packed into frames of at most MaxFrameBytes, with one write.
func (s *Session) writeBatch(pend []byte, ctrl, batch [][]byte, opts *Options) error {
	bp := outBufs.Get().(*[]byte)
	b := append((*bp)[:0], pend...)
	for _, c := range ctrl {
		b = append(b, c...)
	}
	frames, pushes, packages := 0, 0, 0
	for len(batch) > 0 {
		size, k := 0, 0
		for k < len(batch) && (k == 0 || size+len(batch[k]) <= opts.MaxFrameBytes) {
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
	err := s.out.write(b, opts.WriteTimeout)
	if cap(b) <= 1<<20 { // let an outsized buffer go
		*bp = b[:0]
		outBufs.Put(bp)
	}
	if err != nil {
		return err
	}
	m := s.Frontend.metrics
	m.FramesOut.Add(uint64(frames))
	m.PackagesOut.Add(uint64(packages))
	m.PushesDelivered.Add(uint64(pushes))
	return nil
}

// write is a blocking write bounded by timeout. The deadline is moved only
// when less than half of timeout is left, which spares a timer update per
// write: a write gets between timeout/2 and timeout.
func (w *sockWriter) write(b []byte, timeout time.Duration) error {
	if err := w.arm(timeout); err != nil {
		return err
	}
	_, err := w.nc.Write(b)
	return err
}

// arm keeps the write deadline at least timeout/2 away. A direct write never
// waits, but the runtime refuses any write on a socket past its deadline.
func (w *sockWriter) arm(timeout time.Duration) error {
	if now := time.Now(); w.deadline.Sub(now) < timeout/2 {
		w.deadline = now.Add(timeout)
		return w.nc.SetWriteDeadline(w.deadline)
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
func (s *Session) finish(kick []byte) {
	deadline := time.Now().Add(s.Frontend.opts.WriteTimeout)
	_ = s.conn.SetWriteDeadline(deadline)
	if kick != nil {
		_ = s.conn.WriteMessage(websocket.BinaryMessage, kick)
	}
	s.mu.Lock()
	reason, code := s.reason, s.code
	s.mu.Unlock()
	if len(reason) > 120 { // close frame payloads are capped at 125 bytes
		reason = reason[:120]
	}
	if code == 0 || code == websocket.CloseAbnormalClosure {
		code = websocket.CloseNormalClosure
	}
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	_ = s.conn.Close()
}

func kickBody(reason string) []byte {
	b := []byte(`{"reason":`)
	b = appendJSONString(b, reason)
	return append(b, '}')
}

var errWriteDirect = errors.New("direct write")

// directPartial counts direct writes the kernel took only in part (tests).
var directPartial atomic.Int64
