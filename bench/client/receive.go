package client

import (
	"errors"
	"fmt"
	"io"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

func (c *Client) readLoop() {
	var err error
	push := Push{Client: c}
	for {
		var r io.Reader
		_, r, err = c.conn.NextReader()
		if err != nil {
			break
		}
		bp := c.f.getBuf()
		*bp, err = readAll(r, *bp)
		if err != nil {
			c.f.putBuf(bp)
			break
		}
		now := Now()
		c.lastRecv.Store(now)
		push.At = now
		err = pomelo.ForEachPackage(*bp, 0, func(p pomelo.Package) error {
			return c.handle(p, &push)
		})
		c.f.putBuf(bp)
		if err != nil {
			break
		}
	}
	c.finish(err)
}

// finish is the end of a receive path: the socket closed, pending requests
// failed, done closed and the Closed handler called, once. err is what
// stopped the receive: nil is reported for a local Close (unless the server
// kicked), the cause for an abort, ErrClosed otherwise.
func (c *Client) finish(err error) {
	local := c.closed.Swap(true)
	if cause := c.cause.Load(); cause != nil {
		err, local = *cause, false
	}
	c.conn.Close()
	c.f.wheel.remove(c)
	c.pmu.Lock()
	dead := c.pending
	c.pending = nil
	c.pmu.Unlock()
	for _, p := range dead {
		p.cb(nil, Now(), ErrClosed)
	}
	if local && !errors.Is(err, ErrKicked) {
		err = nil
	} else if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
		err = fmt.Errorf("%w by the server: code %d %q", ErrClosed, ce.Code, ce.Text)
	} else if err == nil {
		err = ErrClosed
	}
	close(c.done)
	if c.h.Closed != nil {
		c.h.Closed(c, err)
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	b = b[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (c *Client) handle(p pomelo.Package, push *Push) error {
	switch p.Type {
	case pomelo.Data:
		return c.handleData(p.Body, push)
	case pomelo.Heartbeat, pomelo.Handshake:
		return nil
	case pomelo.Kick:
		if c.h.Kick != nil {
			c.h.Kick(c, p.Body)
		}
		return fmt.Errorf("%w: %s", ErrKicked, p.Body)
	}
	return nil
}

// handleData decodes a DATA message without allocating: string routes stay
// byte slices, compressed ones resolve to the dictionary's strings.
func (c *Client) handleData(b []byte, push *Push) error {
	if len(b) < 1 {
		return pomelo.ErrShort
	}
	flag := b[0]
	typ := pomelo.MessageType(flag >> 1 & 0x07)
	off := 1
	switch typ {
	case pomelo.Response:
		var id uint32
		for shift := 0; ; shift += 7 {
			if off >= len(b) || shift > 28 {
				return fmt.Errorf("%w: response id", pomelo.ErrMessage)
			}
			id |= uint32(b[off]&0x7f) << shift
			off++
			if b[off-1]&0x80 == 0 {
				break
			}
		}
		if p, ok := c.takePending(id); ok {
			body := b[off:]
			if c.protos != nil && c.protos.server[p.route] {
				js, err := c.protos.p.DecodeServer(p.route, body)
				if err != nil {
					p.cb(nil, push.At, err)
					return nil
				}
				body = js
			}
			p.cb(body, push.At, nil)
		}
		return nil
	case pomelo.Push:
		var route []byte
		if flag&0x01 != 0 {
			if len(b) < 3 {
				return pomelo.ErrShort
			}
			r, ok := c.dict.Route(uint16(b[1])<<8 | uint16(b[2]))
			if !ok {
				return nil // unknown push route: ignore, as the JS client would
			}
			route = unsafeBytes(r)
			off = 3
		} else {
			if len(b) < 2 || len(b) < 2+int(b[1]) {
				return pomelo.ErrShort
			}
			route = b[2 : 2+int(b[1])]
			off = 2 + int(b[1])
		}
		push.Route = route
		push.Body = b[off:]
		push.Proto = c.protos.hasServer(route)
		if c.h.Push != nil {
			c.h.Push(push)
		}
		return nil
	}
	return nil // requests and notifies from a server: ignore
}
