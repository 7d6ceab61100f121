package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
)

// Dial connects to a connector (or any pomelo frontend) at addr and shakes
// hands; on success the client receives (on an epoll loop, or its reader
// goroutine) and heartbeats are on the wheel.
func (f *Fleet) Dial(ctx context.Context, addr string, h *Handlers) (*Client, error) {
	c, _, err := f.DialTimed(ctx, addr, h)
	return c, err
}

// Timing splits the cost of a Dial: the websocket connect (TCP + HTTP
// upgrade) and the pomelo handshake (handshake, answer, ack).
type Timing struct {
	Connect, Handshake time.Duration
}

// DialTimed is Dial that also reports how long each step took. When the
// error is a *StepError it says which step failed.
func (f *Fleet) DialTimed(ctx context.Context, addr string, h *Handlers) (*Client, Timing, error) {
	return f.DialAs(ctx, addr, h, 0)
}

// DialAs is DialTimed that sets the client's ID before its receive path
// starts: a handler may run for a push as soon as the handshake is done, on
// another goroutine, so an ID set after Dial returns would race with it.
func (f *Fleet) DialAs(ctx context.Context, addr string, h *Handlers, id int32) (*Client, Timing, error) {
	c, t, err := f.connect(ctx, addr, h)
	if err != nil {
		return nil, t, err
	}
	c.ID = id
	c.lastRecv.Store(Now())
	if err := c.startWrites(); err != nil {
		c.conn.Close()
		return nil, t, &StepError{"handshake", fmt.Errorf("%s: %w", addr, err)}
	}
	// The handshake response was the last read through gorilla: the server
	// sends nothing before the ack, and gorilla reads only when asked, so its
	// buffer holds no byte of a later frame; the kernel keeps whatever arrives
	// after the ack for the epoll loop (epoll_ctl reports a socket that is
	// readable when it is added, so data that arrived before is not missed).
	polled, err := f.polls.attach(f, c)
	if err != nil {
		c.conn.Close()
		return nil, t, &StepError{"handshake", fmt.Errorf("%s: %w", addr, err)}
	}
	if !polled {
		c.replyOnQueue()
		go c.readLoop()
	}
	f.wheel.add(c)
	return c, t, nil
}

// connect dials and shakes hands synchronously; no goroutine is started.
func (f *Fleet) connect(ctx context.Context, addr string, h *Handlers) (*Client, Timing, error) {
	var t Timing
	if h == nil {
		h = &Handlers{}
	}
	t0 := time.Now()
	conn, _, err := f.dialer.DialContext(ctx, "ws://"+addr+"/", nil)
	t.Connect = time.Since(t0)
	if err != nil {
		return nil, t, &StepError{"connect", fmt.Errorf("%s: %w", addr, err)}
	}
	conn.SetReadLimit(f.opts.MaxMessage)
	c := &Client{f: f, h: h, conn: conn, addr: addr, done: make(chan struct{})}
	t1 := time.Now()
	err = c.handshake(ctx)
	t.Handshake = time.Since(t1)
	if err != nil {
		conn.Close()
		return nil, t, &StepError{"handshake", fmt.Errorf("%s: %w", addr, err)}
	}
	return c, t, nil
}

func (c *Client) handshake(ctx context.Context) error {
	f := c.f
	body := f.opts.HandshakeBody
	var sent versions // what this client announces (nothing with a custom body)
	f.mu.Lock()
	ver := f.lastVer[c.addr]
	f.mu.Unlock()
	if body == nil {
		sent = ver
		body = pomelo.DefaultHandshakeRequest()
		if ver[0] != "" || ver[1] != "" {
			req := pomelo.HandshakeRequest{Sys: &pomelo.ClientSys{
				Type: pomelo.ClientTypeJSWS, Version: pomelo.ClientVersionJS, RSA: json.RawMessage(`{}`),
				DictVersion: ver[0],
			}, User: json.RawMessage(`{}`)}
			if ver[1] != "" {
				req.Sys.ProtoVersion = json.RawMessage(ver[1]) // as the server sent it
			}
			body, _ = json.Marshal(req)
		}
	}
	deadline := time.Now().Add(f.opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetReadDeadline(deadline)
	defer c.conn.SetReadDeadline(time.Time{})
	if err := c.writePackage(pomelo.Handshake, body); err != nil {
		return err
	}
	var resp pomelo.HandshakeResponse
	for got := false; !got; {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return err
		}
		err = pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
			if p.Type != pomelo.Handshake || got {
				return nil
			}
			got = true
			return json.Unmarshal(p.Body, &resp)
		})
		if err != nil {
			return err
		}
	}
	if resp.Code != pomelo.CodeOK {
		return &HandshakeError{Code: resp.Code}
	}
	if err := c.adopt(resp.Sys, sent); err != nil {
		return err
	}
	return c.writePackage(pomelo.HandshakeAck, nil)
}

// adopt takes the heartbeat, dictionary and protos of a server handshake
// (adoptSys), given the versions this client announced in it.
func (c *Client) adopt(sys *pomelo.ServerSys, sent versions) error {
	if sys == nil {
		return nil
	}
	f := c.f
	c.hb = time.Duration(sys.Heartbeat) * time.Second
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.adoptSys(sys, sent)
	if err != nil {
		return err
	}
	c.dict, c.protos = a.dict, a.protos
	f.lastVer[c.addr] = a.vers
	return nil
}

// QueryEntry asks the gate at gateAddr which connector serves uid (connect,
// handshake, gate.gateHandler.queryEntry, close) and returns its host:port.
func (f *Fleet) QueryEntry(ctx context.Context, gateAddr, uid string) (string, error) {
	c, _, err := f.connect(ctx, gateAddr, nil)
	if err != nil {
		return "", err
	}
	defer c.conn.Close()
	body := chatproto.AppendQueryEntry(nil, uid)
	resp, err := c.syncRequest(ctx, chatproto.RouteQueryEntry, body)
	if err != nil {
		return "", fmt.Errorf("queryEntry at %s: %w", gateAddr, err)
	}
	var r struct {
		Code    int    `json:"code"`
		Host    string `json:"host"`
		Port    int    `json:"port"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return "", fmt.Errorf("queryEntry at %s: %w", gateAddr, err)
	}
	if r.Code != chatproto.CodeOK || r.Port == 0 {
		return "", &ResponseError{Route: chatproto.RouteQueryEntry, Code: r.Code, Message: r.Message}
	}
	host := r.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host, _, _ = net.SplitHostPort(gateAddr)
	}
	c.writeClose()
	return net.JoinHostPort(host, strconv.Itoa(r.Port)), nil
}
