package connector

import (
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
// Outbound packages go through Enqueue into a byte-capped queue drained by one
// writer goroutine that packs everything queued into as few websocket frames
// as it can and flushes when the queue is empty.
type Session struct {
	ID       uint64
	Frontend *Frontend

	// Application state, owned by the reader goroutine.
	UID, Name, Room string
	Data            any

	conn       *websocket.Conn
	remoteAddr string

	mu     sync.Mutex
	queue  [][]byte // packages waiting for the writer; each is read-only
	queued int      // bytes in queue
	closed bool     // no more enqueues; the writer drains a kick, if any, and exits
	kick   []byte   // KICK package to send before closing, if any
	reason string   // why the session was closed by the server
	code   int      // websocket close code to send
	wake   chan struct{}

	done chan struct{} // closed when the writer has exited

	// For the frontend's sweeper: when the reader last saw a frame (unix ns),
	// whether the handshake is done, and whether the sweeper closed it.
	lastRead  atomic.Int64
	handshook atomic.Bool
	timedOut  atomic.Bool
}

func newSession(f *Frontend, id uint64, c *websocket.Conn) *Session {
	s := &Session{
		ID: id, Frontend: f, conn: c, remoteAddr: c.RemoteAddr().String(),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() string { return s.remoteAddr }

// Enqueue queues a complete encoded package for the client without blocking.
// pkt must not be modified afterwards: a broadcast shares one slice between
// every recipient. If the queue would pass its byte cap, the session is
// closed as a slow consumer instead of stalling the sender. It reports
// whether the package was queued.
func (s *Session) Enqueue(pkt []byte) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.Frontend.metrics.PushesDropped.Add(1)
		return false
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
	if first { // the writer takes the whole queue: only an empty one needs a wake-up
		s.signal()
	}
	return true
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

// writeLoop is the session's only writer. It swaps the queue out under the
// lock and writes the whole batch as one websocket message (several pomelo
// packages per frame, which stock clients decode in a loop), split only when a
// frame would pass MaxFrameBytes.
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
			batch := s.queue
			s.queue = spare[:0]
			s.queued = 0
			closed, kick := s.closed, s.kick
			s.kick = nil
			s.mu.Unlock()

			n := len(batch)
			if n > 0 {
				if err := s.writeBatch(batch, opts); err != nil {
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

func (s *Session) writeBatch(batch [][]byte, opts *Options) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(opts.WriteTimeout))
	frames, pushes, packages := 0, 0, 0
	for len(batch) > 0 {
		w, err := s.conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return err
		}
		size := 0
		for len(batch) > 0 && (size == 0 || size+len(batch[0]) <= opts.MaxFrameBytes) {
			p := batch[0]
			batch = batch[1:]
			if len(p) > 0 && p[0] == byte(pomelo.Data) && len(p) > pomelo.HeaderLen && p[pomelo.HeaderLen]>>1&7 == byte(pomelo.Push) {
				pushes++
			}
			if _, err := w.Write(p); err != nil {
				return err
			}
			size += len(p)
			packages++
		}
		if err := w.Close(); err != nil {
			return err
		}
		frames++
	}
	m := s.Frontend.metrics
	m.FramesOut.Add(uint64(frames))
	m.PackagesOut.Add(uint64(packages))
	m.PushesDelivered.Add(uint64(pushes))
	return nil
}

// finish sends the kick (if any) and a close frame, then closes the socket so
// the reader returns.
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
