package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// hbServer is a pomelo frontend with 1 s heartbeats. It answers and counts
// the heartbeats of every connection except the first, whose reader stops
// after the handshake (the server keeps sending it heartbeats, so the client
// does not time it out): a socket whose peer stopped reading.
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				if p.Type == pomelo.Heartbeat {
					c.beats.Add(1)
					return ws.WriteMessage(websocket.BinaryMessage, pomelo.HeartbeatPackage)
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

// keepStuck keeps the client's socket buffer full until stop closes, by
// writing beneath the websocket framing (the peer never reads it) whenever
// it can take the client's write lock, until a write of the client blocks:
// blocked is closed once some write of the client held the lock for 500 ms
// on end.
func keepStuck(t *testing.T, c *Client, stop <-chan struct{}) (blocked <-chan struct{}) {
	t.Helper()
	b := make(chan struct{})
	raw := c.conn.UnderlyingConn()
	chunk := make([]byte, 64<<10)
	fill := func() error {
		defer c.wmu.Unlock()
		for {
			raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := raw.Write(chunk); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return nil
				}
				return err
			}
		}
	}
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		signal := b
		var held time.Time // since when another write holds the lock
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if !c.wmu.TryLock() {
				if held.IsZero() {
					held = time.Now()
				} else if time.Since(held) > 500*time.Millisecond && signal != nil {
					close(signal)
					signal = nil
				}
				continue
			}
			held = time.Time{}
			if err := fill(); err != nil {
				t.Errorf("filling the socket buffer: %v", err)
				return
			}
		}
	}()
	return b
}

// One client whose server stopped reading must not delay the heartbeats of
// the others: its heartbeat write blocks (up to the write timeout, a minute
// here), the wheel does not.
func TestStuckSocketDoesNotDelayHeartbeats(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv := startHBServer(t)
			f := NewFleet(Options{Pollers: m.pollers, WriteTimeout: time.Minute})
			t.Cleanup(f.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stuck, err := f.Dial(ctx, srv.addr, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.waitConns(t, 1) // the first connection is the one not read
			others := make([]*Client, 3)
			for i := range others {
				if others[i], err = f.Dial(ctx, srv.addr, nil); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { others[i].Close() })
			}
			conns := srv.waitConns(t, 1+len(others))[1:]

			stop := make(chan struct{})
			defer close(stop)
			select {
			case <-keepStuck(t, stuck, stop):
			case <-time.After(20 * time.Second):
				t.Fatal("no write of the stuck client ever blocked")
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
			if stuck.wmu.TryLock() {
				stuck.wmu.Unlock()
				t.Fatal("the stuck client's write finished: the peer read after all")
			}
			select {
			case <-stuck.Done():
				t.Fatal("the stuck client was closed; it should only be waiting")
			default:
			}
		})
	}
}
