package client

import (
	"context"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// syncRequest sends one request and reads until its response, before the
// reader goroutine exists (used for the short-lived gate connection).
func (c *Client) syncRequest(ctx context.Context, route string, body []byte) ([]byte, error) {
	c.pmu.Lock()
	c.nextID++
	id := c.nextID
	c.pmu.Unlock()
	if err := c.send(pomelo.Request, id, route, body); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(c.f.opts.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetReadDeadline(deadline)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		var out []byte
		err = pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
			switch p.Type {
			case pomelo.Data:
				m, err := pomelo.ParseMessage(p.Body)
				if err != nil {
					return err
				}
				if m.Type == pomelo.Response && m.ID == id {
					out = m.Body
				}
			case pomelo.Kick:
				return fmt.Errorf("%w: %s", ErrKicked, p.Body)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if out != nil {
			return out, nil
		}
	}
}

// Request sends a request; cb gets the response (or an error) later without a
// goroutine of its own. It returns the write error, in which case cb is not called.
func (c *Client) Request(route string, body []byte, cb Callback) error {
	if c.closed.Load() {
		return ErrClosed
	}
	now := Now()
	c.pmu.Lock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	id := c.nextID
	c.pending = append(c.pending, pending{id: id, sent: now, cb: cb, route: route})
	c.pmu.Unlock()
	if err := c.send(pomelo.Request, id, route, body); err != nil {
		c.takePending(id)
		return err
	}
	return nil
}

// Call is a blocking Request for control-plane calls; it returns a copy of the body.
func (c *Client) Call(ctx context.Context, route string, body []byte) ([]byte, error) {
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	err := c.Request(route, body, func(b []byte, _ int64, err error) {
		ch <- result{append([]byte(nil), b...), err}
	})
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err == nil {
			if e := ParseError(route, r.body); e != nil {
				return r.body, e
			}
		}
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Notify sends a notify (no response).
func (c *Client) Notify(route string, body []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return c.send(pomelo.Notify, 0, route, body)
}

func (c *Client) send(t pomelo.MessageType, id uint32, route string, body []byte) error {
	if c.protos.hasClient(route) {
		pb, err := c.protos.p.EncodeClient(route, body)
		if err != nil {
			return err
		}
		body = pb
	}
	m := pomelo.Message{Type: t, ID: id, Route: route, Body: body}
	if code, ok := c.dict.Code(route); ok {
		m.Compressed, m.RouteCode, m.Route = true, code, ""
	}
	bp := c.frameStart()
	b, err := pomelo.AppendData(*bp, &m)
	*bp = b
	if err != nil {
		c.f.putBuf(bp)
		return err
	}
	return c.sendFrame(opBinary, bp)
}

func (c *Client) writePackage(t pomelo.PackageType, body []byte) error {
	bp := c.frameStart()
	*bp = pomelo.AppendPackage(*bp, t, body)
	return c.sendFrame(opBinary, bp)
}

// writeClose sends a normal close frame (before the receive path starts it
// waits up to ctlWait; after, it never waits).
func (c *Client) writeClose() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if c.w == nil {
		bp := c.frameStart()
		*bp = append(*bp, msg...)
		_ = c.writeBlocking(frameMsg(opClose, *bp), time.Now().Add(ctlWait))
		c.f.putBuf(bp)
		return
	}
	_ = c.writeCtl(opClose, msg)
}

func (c *Client) takePending(id uint32) (pending, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for i := range c.pending {
		if c.pending[i].id == id {
			p := c.pending[i]
			last := len(c.pending) - 1
			c.pending[i] = c.pending[last]
			c.pending[last] = pending{}
			c.pending = c.pending[:last]
			if len(c.pending) == 0 && cap(c.pending) > 8 {
				c.pending = nil
			}
			return p, true
		}
	}
	return pending{}, false
}

// expire fails requests older than the request timeout (run by the wheel).
func (c *Client) expire(now int64) {
	limit := int64(c.f.opts.RequestTimeout)
	var dead []pending
	c.pmu.Lock()
	for i := 0; i < len(c.pending); {
		if now-c.pending[i].sent > limit {
			dead = append(dead, c.pending[i])
			last := len(c.pending) - 1
			c.pending[i] = c.pending[last]
			c.pending[last] = pending{}
			c.pending = c.pending[:last]
			continue
		}
		i++
	}
	c.pmu.Unlock()
	for _, p := range dead {
		p.cb(nil, now, ErrTimeout)
	}
}
