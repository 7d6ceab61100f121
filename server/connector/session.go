package connector

import (
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/internal/wsout"
	"github.com/chatbench/chatbench/pomelo"
)

// Session is one client websocket. Application state (UID, Name, Room, Data)
// belongs to the session's reader goroutine: handlers run there, one request
// at a time, so they may read and write it without locks.
//
// Outbound packages go through Enqueue to the session's wsout.Writer: written
// at once on the caller's goroutine when the session is idle, else queued
// (byte-capped) for its coalescing writer goroutine.
type Session struct {
	ID       uint64
	Frontend *Frontend

	// Application state, owned by the reader goroutine.
	UID, Name, Room string
	Data            any

	conn       *websocket.Conn
	remoteAddr string
	out        wsout.Writer

	// For the frontend's sweeper: when the reader last saw a frame (unix ns),
	// whether the handshake is done, and whether the sweeper closed it.
	lastRead  atomic.Int64
	handshook atomic.Bool
	timedOut  atomic.Bool
}

func newSession(f *Frontend, id uint64, c *websocket.Conn) *Session {
	s := &Session{ID: id, Frontend: f, conn: c, remoteAddr: c.RemoteAddr().String()}
	s.lastRead.Store(time.Now().UnixNano())
	s.out.Start(c, &f.out)
	return s
}

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() string { return s.remoteAddr }

// Enqueue sends a complete encoded package to the client without blocking:
// written at once or queued. pkt must not be modified afterwards: a broadcast
// shares one slice between every recipient. If the queue would pass its byte
// cap, the session is kicked as a slow consumer instead of stalling the
// sender. It reports whether the package was taken.
func (s *Session) Enqueue(pkt []byte) bool { return s.out.Enqueue(pkt) == nil }

// EnqueueQueued is Enqueue through the session's writer goroutine only (see
// wsout.Writer.EnqueueQueued): for the split connector's NATS push handler,
// one goroutine that fans out every push of the connector.
func (s *Session) EnqueueQueued(pkt []byte) bool { return s.out.EnqueueQueued(pkt) == nil }

// Kick closes the session after sending a KICK package with reason.
func (s *Session) Kick(reason string) {
	s.out.Kick(pomelo.AppendPackage(nil, pomelo.Kick, kickBody(reason)), websocket.ClosePolicyViolation, reason)
}

// Close closes the session without a KICK, after the queued packages are
// written (best effort, bounded by the write timeout), with a websocket close
// frame carrying code and reason.
func (s *Session) Close(code int, reason string) { s.out.Close(code, reason) }

// Reason returns why the server closed the session ("" if it did not).
func (s *Session) Reason() string { return s.out.Reason() }

func kickBody(reason string) []byte {
	b := []byte(`{"reason":`)
	b = pomelo.AppendJSONString(b, reason)
	return append(b, '}')
}
