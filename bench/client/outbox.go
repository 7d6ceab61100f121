package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The send path never waits on a socket. Every write of a connected client
// (request, notify, heartbeat, pong, close) frames its websocket message in a
// pooled buffer and hands it to queue, which writes what the kernel takes at
// once with a non-blocking write(2). Only when the kernel's send buffer is
// full (the server stopped reading, or reads slower than the client sends)
// does the rest go to the client's backlog, which a goroutine of its own then
// writes (flush) with Options.WriteTimeout per attempt, while later messages
// join the backlog behind it. So a stuck socket holds no goroutine but its own
// flush: not the sender that scheduled the message, not the heartbeat wheel,
// not Close. A server that stopped reading is one that takes no byte for the
// write timeout: the client then fails with ErrSendStalled. The backlog is
// also bounded (Options.SendBacklog), a memory guard against a sender that
// outruns its server by megabytes: past it the client fails the same way.
//
// Before the receive path starts (the handshake, the gate's queryEntry) the
// client's own goroutine is its only writer, and writes block with the
// handshake's deadline (writeBlocking).

// maxHeader is the longest header of a client frame: 2 bytes, a 64-bit
// length and the 4-byte masking key. Frames are built after that much room
// (frameStart) and the header written backwards in front of the payload.
const maxHeader = 14

// tryWriter writes what the kernel takes of b now, without waiting (n < len(b)
// when its send buffer is full).
type tryWriter interface {
	tryWrite(b []byte) (int, error)
}

// rawWriter is the tryWriter of a socket in Go's netpoller: one non-blocking
// write(2) through its syscall.RawConn. Its fields are used under c.omu; fn
// is bound once so that a write allocates nothing.
type rawWriter struct {
	rc  syscall.RawConn
	b   []byte
	n   int
	err error
	fn  func(uintptr) bool
}

func newRawWriter(conn net.Conn) (*rawWriter, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("client: %T has no descriptor for non-blocking writes", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &rawWriter{rc: rc}
	w.fn = w.write
	return w, nil
}

func (w *rawWriter) write(fd uintptr) bool {
	for {
		n, err := unix.Write(int(fd), w.b)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			n, err = 0, nil
		case nil:
		default:
			err = os.NewSyscallError("write", err)
		}
		w.n, w.err = max(n, 0), err
		return true // never wait for the socket to become writable
	}
}

func (w *rawWriter) tryWrite(b []byte) (int, error) {
	w.b = b
	err := w.rc.Write(w.fn)
	w.b = nil
	if err != nil {
		return 0, err
	}
	return w.n, w.err
}

// startWrites switches the client to non-blocking writes; DialAs calls it
// once the receive path owns the socket.
func (c *Client) startWrites() error {
	u := c.conn.UnderlyingConn()
	u.SetWriteDeadline(time.Time{}) // the handshake's; a TCPConn's raw write honours it
	if w, ok := u.(tryWriter); ok {
		c.w = w
		return nil
	}
	w, err := newRawWriter(u)
	if err != nil {
		return err
	}
	c.w = w
	return nil
}

// frameStart returns a pooled buffer with room for a frame header; append the
// payload to *bp and pass it to sendFrame.
func (c *Client) frameStart() *[]byte {
	bp := c.f.getBuf()
	*bp = append((*bp)[:0], make([]byte, maxHeader)...)
	return bp
}

// sendFrame frames the payload of *bp (frameMsg), queues it and releases bp.
func (c *Client) sendFrame(op byte, bp *[]byte) error {
	err := c.queue(frameMsg(op, *bp))
	c.f.putBuf(bp)
	return err
}

// frameMsg makes the payload of b (after maxHeader bytes) a final, masked
// websocket frame of opcode op, in place, and returns the frame.
func frameMsg(op byte, b []byte) []byte {
	payload := b[maxHeader:]
	n := len(payload)
	h := maxHeader
	key := rand.Uint32()
	h -= 4
	binary.LittleEndian.PutUint32(b[h:], key)
	switch {
	case n < 126:
		h--
		b[h] = maskBit | byte(n)
	case n < 1<<16:
		h -= 3
		b[h] = maskBit | 126
		binary.BigEndian.PutUint16(b[h+1:], uint16(n))
	default:
		h -= 9
		b[h] = maskBit | 127
		binary.BigEndian.PutUint64(b[h+1:], uint64(n))
	}
	h--
	b[h] = finBit | op
	maskBytes(key, payload)
	return b[h:]
}

// maskBytes XORs b with the 4-byte masking key (RFC 6455 section 5.3), a
// word at a time.
func maskBytes(key uint32, b []byte) {
	k := uint64(key) | uint64(key)<<32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// queue writes a frame without waiting: what the kernel does not take now
// goes to the backlog, written by flush. It fails once the client failed to
// write (the stream may hold part of a frame), and fails the client when the
// backlog would pass Options.SendBacklog.
func (c *Client) queue(frame []byte) error {
	if c.w == nil {
		return c.writeBlocking(frame, time.Now().Add(c.f.opts.WriteTimeout))
	}
	c.omu.Lock()
	if c.werr != nil {
		err := c.werr
		c.omu.Unlock()
		return err
	}
	if c.backlog != nil {
		if len(*c.backlog)+len(frame) > c.f.opts.SendBacklog {
			err := fmt.Errorf("%w: %s has not read %d bytes queued behind its socket (send backlog %d)",
				ErrSendStalled, c.addr, len(*c.backlog)+len(frame), c.f.opts.SendBacklog)
			c.werr = err
			c.omu.Unlock()
			c.abort(err)
			return err
		}
		*c.backlog = append(*c.backlog, frame...)
		c.omu.Unlock()
		return nil
	}
	n, err := c.w.tryWrite(frame)
	if err != nil {
		err = fmt.Errorf("write to %s: %w", c.addr, err)
		c.werr = err
		c.omu.Unlock()
		return err
	}
	if n < len(frame) {
		c.backlog = c.f.getBuf()
		*c.backlog = append(*c.backlog, frame[n:]...)
		go c.flush()
	}
	c.omu.Unlock()
	return nil
}

// flushChunk is the most a backlog write hands the kernel under one deadline.
const flushChunk = 64 << 10

// flush writes the backlog until it is empty, blocking on the socket (this
// goroutine only) with Options.WriteTimeout for each chunk of flushChunk
// bytes. A failed or timed-out
// write fails the client; Close and abort end a blocked write at once by
// closing or shutting down the socket.
func (c *Client) flush() {
	u := c.conn.UnderlyingConn()
	var out *[]byte
	for {
		c.omu.Lock()
		if len(*c.backlog) == 0 || c.werr != nil {
			u.SetWriteDeadline(time.Time{}) // tryWrite on a TCPConn honours it
			c.f.putBuf(c.backlog)
			c.backlog = nil
			c.omu.Unlock()
			if out != nil {
				c.f.putBuf(out)
			}
			return
		}
		if out == nil {
			out = c.f.getBuf()
		}
		c.backlog, out = out, c.backlog
		c.omu.Unlock()
		var err error
		for b := *out; len(b) > 0 && err == nil; {
			// each chunk gets the whole timeout: a server that reads slowly
			// is waited for, one that stopped reading fails the client
			n := min(len(b), flushChunk)
			u.SetWriteDeadline(time.Now().Add(c.f.opts.WriteTimeout))
			_, err = u.Write(b[:n])
			b = b[n:]
		}
		*out = (*out)[:0]
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: %s read nothing for the write timeout (%v)", ErrSendStalled, c.addr, c.f.opts.WriteTimeout)
		} else {
			err = fmt.Errorf("write to %s: %w", c.addr, err)
		}
		c.omu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.omu.Unlock()
		c.abort(err)
	}
}

// writeBlocking writes a frame before the receive path starts, when the
// client's own goroutine is its only writer.
func (c *Client) writeBlocking(frame []byte, deadline time.Time) error {
	u := c.conn.UnderlyingConn()
	u.SetWriteDeadline(deadline)
	if _, err := u.Write(frame); err != nil {
		return fmt.Errorf("write to %s: %w", c.addr, err)
	}
	return nil
}

// writeCtl queues a control frame (pong, close).
func (c *Client) writeCtl(op byte, payload []byte) error {
	bp := c.frameStart()
	*bp = append(*bp, payload...)
	return c.sendFrame(op, bp)
}

// queued is the number of bytes in the client's backlog (0: its writes go
// straight to the kernel).
func (c *Client) queued() int {
	c.omu.Lock()
	defer c.omu.Unlock()
	if c.backlog == nil {
		return 0
	}
	return len(*c.backlog)
}
