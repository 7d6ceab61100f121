package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// rawServer is a pomelo frontend for tests of the receive path: it shakes
// hands like the reference server, then lets the test write arbitrary bytes
// (split frames, fragments, control frames) straight to the socket, while a
// gorilla reader records what the client sends (requests, pongs, close).
type rawServer struct {
	addr  string
	conns chan *rawConn
}

type rawConn struct {
	ws     *websocket.Conn
	raw    net.Conn
	mu     sync.Mutex // serializes raw writes
	pongs  chan string
	closes chan *websocket.CloseError // the client's close frame
	reqs   chan []byte                // data messages from the client
	gone   chan struct{}              // the server's reader stopped
}

// wantClose waits for the client's close frame and checks its code.
func (c *rawConn) wantClose(t testing.TB, code int) {
	t.Helper()
	select {
	case ce := <-c.closes:
		if ce.Code != code {
			t.Errorf("client's close code %d, want %d", ce.Code, code)
		}
	case <-time.After(10 * time.Second):
		t.Error("no close frame from the client")
	}
}

func startRawServer(t testing.TB) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String(), conns: make(chan *rawConn, 4096)}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &rawConn{ws: ws, raw: ws.NetConn(), pongs: make(chan string, 1024),
			closes: make(chan *websocket.CloseError, 1), reqs: make(chan []byte, 1024), gone: make(chan struct{})}
		if err := c.handshake(); err != nil {
			ws.Close()
			return
		}
		ws.SetPongHandler(func(s string) error { c.pongs <- s; return nil })
		ws.SetCloseHandler(func(code int, text string) error {
			c.closes <- &websocket.CloseError{Code: code, Text: text}
			return nil
		})
		s.conns <- c
		go func() {
			defer close(c.gone)
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				select {
				case c.reqs <- msg:
				default:
				}
			}
		}()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// handshake answers the client's HANDSHAKE (heartbeats off) and reads its ACK.
func (c *rawConn) handshake() error { return serverHandshake(c.ws, 0) }

// serverHandshake reads a client's HANDSHAKE on ws, answers it announcing
// heartbeat seconds (0: none) and reads the client's ACK.
func serverHandshake(ws *websocket.Conn, heartbeat int) error {
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	if _, _, err := ws.ReadMessage(); err != nil {
		return err
	}
	resp := pomelo.AppendPackage(nil, pomelo.Handshake, fmt.Appendf(nil, `{"code":200,"sys":{"heartbeat":%d}}`, heartbeat))
	if err := ws.WriteMessage(websocket.BinaryMessage, resp); err != nil {
		return err
	}
	_, ack, err := ws.ReadMessage()
	if err != nil {
		return err
	}
	if len(ack) < 1 || pomelo.PackageType(ack[0]) != pomelo.HandshakeAck {
		return errors.New("no handshake ack")
	}
	return nil
}

func (c *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.raw.Write(b); err != nil {
		t.Errorf("server write: %v", err)
	}
}

// accept dials a client to s and returns both ends.
// startFleet starts a raw server and a fleet with opts; the fleet closes
// at the end of the test, before the server.
func startFleet(t testing.TB, opts Options) (*rawServer, *Fleet) {
	t.Helper()
	srv := startRawServer(t)
	f := NewFleet(opts)
	t.Cleanup(f.Close)
	return srv, f
}

// connectSink is startFleet plus one client whose pushes go to a sink; the
// client closes at the end of the test.
func connectSink(t testing.TB, opts Options) (*Client, *rawConn, *sink) {
	t.Helper()
	srv, f := startFleet(t, opts)
	s := newSink()
	c, sc := srv.accept(t, f, s.handlers())
	t.Cleanup(func() { c.Close() })
	return c, sc, s
}

func (s *rawServer) accept(t testing.TB, f *Fleet, h *Handlers) (*Client, *rawConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := f.Dial(ctx, s.addr, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	select {
	case sc := <-s.conns:
		return c, sc
	case <-ctx.Done():
		t.Fatal("server side of the connection not seen")
		return nil, nil
	}
}

// frame is an unmasked server frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// pushData is one pomelo DATA package with a push of route and body.
func pushData(route, body string) []byte {
	m := pomelo.Message{Type: pomelo.Push, Route: route, Body: []byte(body)}
	b, err := pomelo.AppendData(nil, &m)
	if err != nil {
		panic(err)
	}
	return b
}

// pushFrame is a binary frame with one push.
func pushFrame(route, body string) []byte { return frame(true, opBinary, pushData(route, body)) }

// sink records pushes (route + " " + body) and Closed errors.
type sink struct {
	mu     sync.Mutex
	pushes []string
	closed []error
	cond   chan struct{} // signalled on every event
}

func newSink() *sink { return &sink{cond: make(chan struct{}, 1)} }

func (s *sink) handlers() *Handlers {
	return &Handlers{
		Push: func(p *Push) {
			s.mu.Lock()
			s.pushes = append(s.pushes, string(p.Route)+" "+string(p.Body))
			s.mu.Unlock()
			s.signal()
		},
		Closed: func(c *Client, err error) {
			s.mu.Lock()
			s.closed = append(s.closed, err)
			s.mu.Unlock()
			s.signal()
		},
	}
}

func (s *sink) signal() {
	select {
	case s.cond <- struct{}{}:
	default:
	}
}

// wait blocks until cond (checked under the lock) holds, or fails the test.
func (s *sink) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.cond:
		case <-timeout.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out waiting for %s (pushes %d, closed %v)", what, len(s.pushes), s.closed)
		}
	}
}

// modes are the two receive paths; the tests run on both.
var modes = []struct {
	name    string
	pollers int
}{
	{"epoll", 2},
	{"goroutine", -1},
}
