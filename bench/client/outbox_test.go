package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// closedErr is a Closed handler that hands the client's end to a channel.
func closedErr() (*Handlers, <-chan error) {
	ch := make(chan error, 1)
	return &Handlers{Closed: func(_ *Client, err error) { ch <- err }}, ch
}

// One client whose server stopped reading must not hold up the sends of
// the other clients of its sender: one goroutine sends for all of them, as a
// driver's sender worker does, 256 KiB notifies for the stuck client and a
// request for each other one per round. The stuck client fails with
// ErrSendStalled (its backlog overflows, or its write makes no progress for
// the write timeout), counted by its Closed handler; the others' requests
// are all sent and answered meanwhile. A send path that waited on the socket
// would hold the sender for the write timeout (a minute in the first case).
func TestStuckSocketDoesNotDelaySends(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string // in the stuck client's error
	}{
		{"backlog full", Options{WriteTimeout: time.Minute, SendBacklog: 1 << 20}, "send backlog"},
		{"write timeout", Options{WriteTimeout: 300 * time.Millisecond, SendBacklog: 64 << 20}, "write timeout"},
	}
	for _, m := range modes {
		for _, tc := range cases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				srv := startHBServer(t)
				opts := tc.opts
				opts.Pollers = m.pollers
				f := NewFleet(opts)
				t.Cleanup(f.Close)
				h, stuckEnd := closedErr()
				stuck, others := srv.dial(t, f, h, 3)

				const rounds = 40
				var answered, failed atomic.Int64
				big := []byte(strings.Repeat("x", 256<<10)) // 40 of them: more than the kernel buffers hold
				sender := make(chan struct{})
				go func() {
					defer close(sender)
					for range rounds {
						_ = stuck.Notify("chat.chatHandler.send", big) // fails once the client failed
						for _, c := range others {
							err := c.Request("chat.chatHandler.send", []byte(`{}`), func(_ []byte, _ int64, err error) {
								if err != nil {
									failed.Add(1)
								} else {
									answered.Add(1)
								}
							})
							if err != nil {
								failed.Add(1)
							}
						}
						time.Sleep(10 * time.Millisecond) // the schedule's gap between rounds, not a wait for an event
					}
				}()
				select {
				case <-sender:
				case <-time.After(20 * time.Second):
					t.Fatal("the sender was held by the stuck socket")
				}
				want := int64(rounds * len(others))
				deadline := time.Now().Add(30 * time.Second)
				for answered.Load()+failed.Load() < want && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if answered.Load() != want {
					t.Errorf("other clients' requests: %d answered, %d failed, want %d answered", answered.Load(), failed.Load(), want)
				}
				select {
				case err := <-stuckEnd:
					if !errors.Is(err, ErrSendStalled) || !strings.Contains(err.Error(), tc.want) {
						t.Errorf("stuck client ended with %v, want ErrSendStalled (%s)", err, tc.want)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("the stuck client did not fail")
				}
				if err := stuck.Notify("chat.chatHandler.send", []byte(`{}`)); err == nil {
					t.Error("a send on the failed client succeeded")
				}
			})
		}
	}
}

// Close returns at once, and the Closed handler runs, even while a write of
// the client cannot finish because its server stopped reading. (The bounds
// are loose for a loaded machine; a Close that waited would wait the write
// timeout, a minute.)
func TestCloseBehindStuckWrite(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv := startHBServer(t)
			f := NewFleet(Options{Pollers: m.pollers, WriteTimeout: time.Minute, SendBacklog: 16 << 20})
			t.Cleanup(f.Close)
			h, end := closedErr()
			stuck, _ := srv.dial(t, f, h, 0)
			filled := fill(stuck, 8<<20)
			select {
			case <-filled:
			case <-time.After(20 * time.Second):
				t.Fatal("the stuck client's sends blocked their sender")
			}
			if stuck.queued() == 0 {
				t.Fatal("the stuck client has no backlog: the peer read after all")
			}
			closed := make(chan error, 1)
			go func() { closed <- stuck.Close() }()
			select {
			case <-closed:
			case <-time.After(20 * time.Second):
				t.Fatal("Close waited behind the stuck write")
			}
			select {
			case err := <-end:
				if err != nil {
					t.Errorf("Closed handler after Close: %v, want nil", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the Closed handler did not run after Close")
			}
			select {
			case <-filled:
			case <-time.After(20 * time.Second):
				t.Fatal("the sender is still held after Close")
			}
		})
	}
}

// BenchmarkSend is the send path through a real loopback socket: one op is
// one chat send (a notify with the body the driver sends), framed, masked
// and written; the server reads and discards. Compare its allocations and
// time with those of BenchmarkReceive.
func BenchmarkSend(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			addr := startDiscardServer(b)
			// a tight loop outruns a reader starved on a loaded machine by
			// megabytes: this measures the send path, not a stall guard
			f := NewFleet(Options{Pollers: m.pollers, SendBacklog: 1 << 30})
			defer f.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := f.Dial(ctx, addr, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			body := []byte(`{"rid":"r00001","content":"~1.2.3.4~xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","from":"u000001","target":"*"}`)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Notify("chat.chatHandler.send", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// startDiscardServer is a pomelo frontend that shakes hands and then reads
// and discards everything a client sends.
func startDiscardServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if serverHandshake(ws, 0) != nil {
			return
		}
		io.Copy(io.Discard, ws.NetConn())
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
