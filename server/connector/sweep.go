package connector

import (
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// sweepInterval is how often the sweeper looks for silent sessions: a quarter
// of the shortest timeout, between 10 ms and 1 s.
func (o *Options) sweepInterval() time.Duration {
	d := o.HandshakeTimeout
	if o.HeartbeatTimeout > 0 && o.HeartbeatTimeout < d {
		d = o.HeartbeatTimeout
	}
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

// sweep closes sessions that sent nothing for the heartbeat timeout (or did
// not finish the handshake in time). One goroutine per frontend replaces a
// read deadline per session: no timer re-arm per frame. Before closing, it
// asks the kernel whether bytes are waiting on the socket: if they are, the
// client was not silent, only this process was too busy to read, and the
// session stays (pomelo would drop it; under overload that turns a slow
// server into a mass disconnect).
func (f *Frontend) sweep() {
	tk := time.NewTicker(f.opts.sweepInterval())
	defer tk.Stop()
	var open []*Session
	for {
		select {
		case <-f.stop:
			return
		case now := <-tk.C:
			open = f.snapshot(open[:0])
			for _, s := range open {
				f.check(s, now.UnixNano())
			}
			clear(open)
		}
	}
}

func (f *Frontend) snapshot(dst []*Session) []*Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		dst = append(dst, s)
	}
	return dst
}

func (f *Frontend) check(s *Session, now int64) {
	limit, reason := f.opts.HandshakeTimeout, "handshake timeout"
	if s.handshook.Load() {
		limit, reason = f.opts.HeartbeatTimeout, "heartbeat timeout"
	}
	if limit <= 0 || time.Duration(now-s.lastRead.Load()) <= limit {
		return
	}
	if pendingBytes(s.conn) > 0 {
		return // the client spoke; the reader has not run yet
	}
	if !s.timedOut.CompareAndSwap(false, true) {
		return
	}
	if reason == "heartbeat timeout" {
		f.metrics.HeartbeatTimeout.Add(1)
	}
	s.Close(websocket.CloseNormalClosure, reason)
}

// pendingBytes returns how many received bytes wait unread in the socket's
// kernel buffer (0 when unknown).
func pendingBytes(c *websocket.Conn) int {
	sc, ok := c.NetConn().(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n = inq(fd) })
	return n
}
