package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// hbServer is a pomelo frontend with 1 s heartbeats. It answers (and counts)
// the heartbeats and requests of every connection except the first, whose
// reader stops after the handshake (the server keeps sending it heartbeats,
// so the client does not time it out): a socket whose peer stopped reading.
// Its sockets have a small receive buffer, so that a few MiB fill the
// stuck connection's kernel buffers.
type hbServer struct {
	addr  string
	mu    sync.Mutex
	conns []*hbConn
	quit  chan struct{}
}

type hbConn struct {
	ws    *websocket.Conn
	beats atomic.Int64 // heartbeats received
}

func startHBServer(t *testing.T) *hbServer {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hbServer{addr: ln.Addr().String(), quit: make(chan struct{})}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &hbConn{ws: ws}
		if err := serverHandshake(ws, 1); err != nil {
			ws.Close()
			return
		}
		s.mu.Lock()
		stuck := len(s.conns) == 0
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		if stuck {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-s.quit:
					return
				case <-tick.C:
					if ws.WriteMessage(websocket.BinaryMessage, pomelo.HeartbeatPackage) != nil {
						return
					}
				}
			}
		}
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			_ = pomelo.ForEachPackage(msg, 0, func(p pomelo.Package) error {
				switch p.Type {
				case pomelo.Heartbeat:
					c.beats.Add(1)
					return ws.WriteMessage(websocket.BinaryMessage, pomelo.HeartbeatPackage)
				case pomelo.Data:
					m, err := pomelo.ParseMessage(p.Body)
					if err != nil || m.Type != pomelo.Request {
						return err
					}
					resp, err := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Response, ID: m.ID, Body: []byte(`{"code":200}`)})
					if err != nil {
						return err
					}
					return ws.WriteMessage(websocket.BinaryMessage, resp)
				}
				return nil
			})
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(s.quit)
		srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.ws.Close() // unread data: the stuck client's write fails at once
		}
	})
	return s
}

// waitConns waits until the server has n connections past the handshake
// and returns them in order.
func (s *hbServer) waitConns(t *testing.T, n int) []*hbConn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		conns := append([]*hbConn(nil), s.conns...)
		s.mu.Unlock()
		if len(conns) >= n {
			return conns
		}
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d connections, want %d", len(conns), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dial connects the stuck client (handlers h), then n others, which close
// at the end of the test.
func (s *hbServer) dial(t *testing.T, f *Fleet, h *Handlers, n int) (stuck *Client, others []*Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stuck, err := f.Dial(ctx, s.addr, h)
	if err != nil {
		t.Fatal(err)
	}
	s.waitConns(t, 1) // the first connection is the one not read
	others = make([]*Client, n)
	for i := range others {
		if others[i], err = f.Dial(ctx, s.addr, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { others[i].Close() })
	}
	return stuck, others
}

// fill sends size bytes of notifies from c, 64 KiB each, on a goroutine of
// its own, until one fails; the channel closes when it is done. Against the
// stuck connection of an hbServer, 8 MiB is more than the kernel buffers of
// the socket hold.
func fill(c *Client, size int) <-chan struct{} {
	done := make(chan struct{})
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'x'
	}
	go func() {
		defer close(done)
		for sent := 0; sent < size; sent += len(body) {
			if c.Notify("chat.chatHandler.send", body) != nil {
				return
			}
		}
	}()
	return done
}

// One client whose server stopped reading must not delay the heartbeats of
// the others: its heartbeats queue behind its backlog (which waits up to the
// write timeout, a minute here), the wheel goes on.
func TestStuckSocketDoesNotDelayHeartbeats(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv := startHBServer(t)
			f := NewFleet(Options{Pollers: m.pollers, WriteTimeout: time.Minute, SendBacklog: 16 << 20})
			t.Cleanup(f.Close)
			stuck, others := srv.dial(t, f, nil, 3)
			conns := srv.waitConns(t, 1+len(others))[1:]

			select {
			case <-fill(stuck, 8<<20):
			case <-time.After(20 * time.Second):
				t.Fatal("the stuck client's sends blocked their sender")
			}
			if stuck.queued() == 0 {
				t.Fatal("the stuck client has no backlog: the peer read after all")
			}
			base := make([]int64, len(conns))
			for i, c := range conns {
				base[i] = c.beats.Load()
			}
			// Every other client sends 3 more heartbeats (about 3 s). A wheel
			// that waited on the stuck socket would send none for a minute.
			deadline := time.Now().Add(20 * time.Second)
			for i, c := range conns {
				for c.beats.Load() < base[i]+3 {
					if time.Now().After(deadline) {
						t.Fatalf("client %d sent %d heartbeats while another socket was stuck, want 3", i+1, c.beats.Load()-base[i])
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			if stuck.queued() == 0 {
				t.Fatal("the stuck client's backlog was written: the peer read after all")
			}
			select {
			case <-stuck.Done():
				t.Fatal("the stuck client was closed; it should only be waiting")
			default:
			}
		})
	}
}
