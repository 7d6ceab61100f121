package client

import (
	"errors"
	"fmt"
	"io"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// replyOnQueue makes gorilla's reader answer pings and close frames through
// the client's send path (as its default handlers would, but without a
// write of their own that could land inside a partly written frame).
func (c *Client) replyOnQueue() {
	c.conn.SetPingHandler(func(data string) error {
		_ = c.writeCtl(opPong, []byte(data))
		return nil
	})
	c.conn.SetCloseHandler(func(code int, _ string) error {
		var echo []byte
		if code != websocket.CloseNoStatusReceived {
			echo = websocket.FormatCloseMessage(code, "")
		}
		_ = c.writeCtl(opClose, echo)
		return nil
	})
}

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
	perr := ErrClosed
	if cause := c.cause.Load(); cause != nil && errors.Is(*cause, ErrSendStalled) {
		perr = fmt.Errorf("%w: %w", ErrClosed, *cause) // the requests died with the stall
	}
	for _, p := range dead {
		p.cb(nil, Now(), perr)
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
	m, route, err := pomelo.ParseMessageRoute(b)
	if err != nil {
		return err
	}
	switch m.Type {
	case pomelo.Response:
		if p, ok := c.takePending(m.ID); ok {
			body := m.Body
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
	case pomelo.Push:
		if m.Compressed {
			r, ok := c.dict.Route(m.RouteCode)
			if !ok {
				return nil // unknown push route: ignore, as the JS client would
			}
			route = unsafeBytes(r)
		}
		push.Route = route
		push.Body = m.Body
		push.Proto = c.protos.hasServer(route)
		if c.h.Push != nil {
			c.h.Push(push)
		}
	}
	return nil // requests and notifies from a server: ignore
}
