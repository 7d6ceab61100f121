package servertest

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Client is a small pomelo client for tests: requests wait for their
// response, pushes queue in arrival order. It is deliberately simple and
// independent of the bench driver's client.
type Client struct {
	t      testing.TB
	conn   *websocket.Conn
	Dict   *pomelo.Dict
	Sys    pomelo.ServerSys
	nextID uint32

	mu        sync.Mutex
	cond      *sync.Cond
	responses map[uint32][]byte
	pushes    []Push
	kicks     []string
	closed    error
	heartbeat int
}

// Push is one received push.
type Push struct {
	Route string
	Body  map[string]any
	Raw   []byte
}

// Timeout bounds every wait of a test client.
var Timeout = 10 * time.Second

// Dial connects to a pomelo websocket at addr (host:port) and handshakes.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := DialErr(t, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// DialErr is Dial returning the error instead of failing the test.
func DialErr(t testing.TB, addr string) (*Client, error) {
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	c := &Client{t: t, conn: conn, responses: map[uint32][]byte{}}
	c.cond = sync.NewCond(&c.mu)
	t.Cleanup(func() { conn.Close() })
	if err := c.WriteRaw(pomelo.AppendPackage(nil, pomelo.Handshake, pomelo.DefaultHandshakeRequest())); err != nil {
		return nil, err
	}
	_, frame, err := conn.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	p, _, err := pomelo.ParsePackage(frame, 0)
	if err != nil || p.Type != pomelo.Handshake {
		return nil, fmt.Errorf("handshake reply: %v (type %v)", err, p.Type)
	}
	var hs pomelo.HandshakeResponse
	if err := json.Unmarshal(p.Body, &hs); err != nil || hs.Code != 200 || hs.Sys == nil {
		return nil, fmt.Errorf("handshake reply %s: %v", p.Body, err)
	}
	c.Sys = *hs.Sys
	c.Dict = pomelo.DictFromHandshake(hs.Sys)
	if err := c.WriteRaw(pomelo.HandshakeAckPackage); err != nil {
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// WriteRaw sends one binary frame as is.
func (c *Client) WriteRaw(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.WriteMessage(websocket.BinaryMessage, b)
}

// WriteText sends one text frame (pomelo frames are binary: servers must refuse it).
func (c *Client) WriteText(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

func (c *Client) readLoop() {
	for {
		_, frame, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.closed = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		perr := pomelo.ForEachPackage(frame, 0, func(p pomelo.Package) error {
			switch p.Type {
			case pomelo.Heartbeat:
				c.heartbeat++
				// Answer after the interval, as a stock pomelo client does.
				if iv := time.Duration(c.Sys.Heartbeat) * time.Second; iv > 0 {
					time.AfterFunc(iv, func() { _ = c.WriteRaw(pomelo.HeartbeatPackage) })
				}
			case pomelo.Kick:
				c.kicks = append(c.kicks, string(p.Body))
			case pomelo.Data:
				m, err := pomelo.ParseMessage(p.Body)
				if err != nil {
					return err
				}
				body := append([]byte(nil), m.Body...)
				switch m.Type {
				case pomelo.Response:
					c.responses[m.ID] = body
				case pomelo.Push:
					route := m.Route
					if m.Compressed {
						route, _ = c.Dict.Route(m.RouteCode)
					}
					var v map[string]any
					_ = json.Unmarshal(body, &v)
					c.pushes = append(c.pushes, Push{Route: route, Body: v, Raw: body})
				}
			}
			return nil
		})
		if perr != nil {
			c.closed = fmt.Errorf("bad frame from server: %w", perr)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// Heartbeats returns how many heartbeats the server sent.
func (c *Client) Heartbeats() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heartbeat
}

// Send sends a request with a string route and returns its message id.
func (c *Client) Send(route string, body any) uint32 {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatalf("marshal %v: %v", body, err)
	}
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	m := pomelo.Message{Type: pomelo.Request, ID: id, Route: route, Body: b}
	if code, ok := c.Dict.Code(route); ok {
		m.Compressed, m.RouteCode, m.Route = true, code, ""
	}
	pkt, err := pomelo.AppendData(nil, &m)
	if err != nil {
		c.t.Fatalf("encode %s: %v", route, err)
	}
	if err := c.WriteRaw(pkt); err != nil {
		c.t.Fatalf("send %s: %v", route, err)
	}
	return id
}

// Wait waits for the response to id and decodes it.
func (c *Client) Wait(id uint32) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if b, ok := c.responses[id]; ok {
			delete(c.responses, id)
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				c.t.Fatalf("response %d %q: %v", id, b, err)
			}
			return v
		}
		if c.closed != nil {
			c.t.Fatalf("connection closed waiting for response %d: %v", id, c.closed)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no response %d within %v", id, Timeout)
		}
		c.waitLocked(deadline)
	}
}

// Request sends a request and waits for its response.
func (c *Client) Request(route string, body any) map[string]any {
	c.t.Helper()
	return c.Wait(c.Send(route, body))
}

// waitLocked waits on the condition with a deadline (c.mu held).
func (c *Client) waitLocked(deadline time.Time) {
	t := time.AfterFunc(time.Until(deadline), func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.cond.Wait()
	t.Stop()
}

// WaitPush waits for the next push with route (earlier pushes of other
// routes stay queued) and removes it.
func (c *Client) WaitPush(route string) Push {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, p := range c.pushes {
			if p.Route == route {
				c.pushes = append(c.pushes[:i], c.pushes[i+1:]...)
				return p
			}
		}
		if c.closed != nil {
			c.t.Fatalf("connection closed waiting for push %s: %v", route, c.closed)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %s push within %v", route, Timeout)
		}
		c.waitLocked(deadline)
	}
}

// Pushes returns and clears the queued pushes.
func (c *Client) Pushes() []Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pushes
	c.pushes = nil
	return p
}

// WaitClosed waits until the server closes the connection and returns the
// read error (a *websocket.CloseError when the server sent a close frame) and
// any kick reasons received.
func (c *Client) WaitClosed() (error, []string) {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.closed == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("server did not close the connection within %v", Timeout)
		}
		c.waitLocked(deadline)
	}
	return c.closed, c.kicks
}

// Close closes the socket.
func (c *Client) Close() { c.conn.Close() }

// Enter asks the gate at gateAddr for a connector, connects and enters rid as
// name, returning the client and the user list.
func Enter(t testing.TB, gateAddr, name, rid string) (*Client, []string) {
	t.Helper()
	g := Dial(t, gateAddr)
	r := g.Request("gate.gateHandler.queryEntry", map[string]any{"uid": name})
	g.Close()
	if code, _ := r["code"].(float64); code != 200 {
		t.Fatalf("queryEntry %s: %v", name, r)
	}
	host, _ := r["host"].(string)
	port, _ := r["port"].(float64)
	c := Dial(t, net.JoinHostPort(host, strconv.Itoa(int(port))))
	resp := c.Request("connector.entryHandler.enter", map[string]any{"username": name, "rid": rid})
	raw, ok := resp["users"].([]any)
	if !ok {
		t.Fatalf("enter %s in %s: %v", name, rid, resp)
	}
	users := make([]string, len(raw))
	for i, u := range raw {
		users[i], _ = u.(string)
	}
	return c, users
}
