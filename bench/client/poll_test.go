package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
)

// Tests of the receive path with real sockets, on both paths (epoll loops and
// a reader goroutine per client): the server writes raw websocket bytes.

// waitRead waits until c has read from its socket at or after t0 (the epoll
// path updates lastRecv on every read, even one without a complete frame).
func waitRead(t *testing.T, c *Client, t0 int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.lastRecv.Load() < t0 {
		if time.Now().After(deadline) {
			t.Fatal("the client did not read the first part")
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// TestSplitFrames: a stream of frames (7-bit and 16-bit lengths, a message
// fragmented around a ping) split at every byte boundary into two reads.
func TestSplitFrames(t *testing.T) {
	big := strings.Repeat("b", 300) // 16-bit length
	var stream []byte
	stream = append(stream, pushFrame("onA", `"a"`)...)
	stream = append(stream, pushFrame("onBig", big)...)
	frag := pushData("onFrag", `"fragmented"`)
	stream = append(stream, frame(false, opBinary, frag[:5])...)
	stream = append(stream, frame(true, opPing, []byte("p"))...)
	stream = append(stream, frame(false, opContinuation, frag[5:9])...)
	stream = append(stream, frame(true, opContinuation, frag[9:])...)
	stream = append(stream, frame(true, opText, pushData("onZ", `"z"`))...)
	want := []string{`onA "a"`, "onBig " + big, `onFrag "fragmented"`, `onZ "z"`}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c, sc, s := connectSink(t, Options{Pollers: m.pollers})
			if (c.rx != nil) != (m.pollers > 0) {
				t.Fatalf("epoll registration %v with Pollers %d", c.rx != nil, m.pollers)
			}
			for i := 1; i < len(stream); i++ {
				t0 := Now()
				sc.write(t, stream[:i])
				if c.rx != nil {
					waitRead(t, c, t0) // the second part arrives in another read
				}
				sc.write(t, stream[i:])
				s.wait(t, fmt.Sprintf("split at %d", i), func() bool { return len(s.pushes) == i*len(want) })
				select {
				case p := <-sc.pongs:
					if p != "p" {
						t.Fatalf("pong %q, want %q", p, "p")
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("split at %d: no pong", i)
				}
			}
			for i, p := range s.pushes {
				if p != want[i%len(want)] {
					t.Fatalf("push %d = %.40q, want %.40q", i, p, want[i%len(want)])
				}
			}
		})
	}
}

// TestManyFramesOneWrite: hundreds of frames in one write, in order.
func TestManyFramesOneWrite(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			_, sc, s := connectSink(t, Options{Pollers: m.pollers})
			const n = 2000 // ~40 KB
			var b []byte
			for i := range n {
				b = append(b, pushFrame("onChat", fmt.Sprintf(`{"msg":"%d"}`, i))...)
			}
			sc.write(t, b)
			s.wait(t, "every push", func() bool { return len(s.pushes) == n })
			for i, p := range s.pushes {
				if want := fmt.Sprintf(`onChat {"msg":"%d"}`, i); p != want {
					t.Fatalf("push %d = %q, want %q", i, p, want)
				}
			}
		})
	}
}

// TestLargeMessages: messages larger than the loop's buffer, whole and
// fragmented, and MaxMessage enforced on both.
func TestLargeMessages(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB
	data := pushData("onBig", string(body))
	fragmented := append(append(frame(false, opBinary, data[:70<<10]),
		frame(false, opContinuation, data[70<<10:140<<10])...),
		frame(true, opContinuation, data[140<<10:])...)
	tests := []struct {
		name   string
		max    int64
		stream []byte
		ok     bool
	}{
		{"whole", 1 << 20, frame(true, opBinary, data), true},
		{"fragmented", 1 << 20, fragmented, true},
		{"whole too big", 100 << 10, frame(true, opBinary, data), false},
		{"fragmented too big", 100 << 10, fragmented, false},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				_, sc, s := connectSink(t, Options{Pollers: m.pollers, MaxMessage: tc.max})
				stream := append(append([]byte(nil), tc.stream...), pushFrame("onEnd", "1")...)
				go sc.raw.Write(stream) // fails when the client closed first (too big)
				if tc.ok {
					s.wait(t, "both pushes", func() bool { return len(s.pushes) == 2 })
					if s.pushes[0] != "onBig "+string(body) || s.pushes[1] != "onEnd 1" {
						t.Fatalf("pushes %.40q", s.pushes)
					}
					return
				}
				s.wait(t, "closed", func() bool { return len(s.closed) == 1 })
				if !errors.Is(s.closed[0], websocket.ErrReadLimit) || len(s.pushes) != 0 {
					t.Errorf("closed with %v after %d pushes, want the read limit and none", s.closed[0], len(s.pushes))
				}
				sc.wantClose(t, websocket.CloseMessageTooBig)
			})
		}
	}
}

// TestServerEnds: a close frame, a kick, or the socket just ending; pending
// requests fail with ErrClosed, Closed runs once with the reader's error.
func TestServerEnds(t *testing.T) {
	tests := []struct {
		name     string
		end      func(*rawConn) []byte // bytes to write; nil: close the socket
		wantErr  error
		wantText string
		echo     int // close code the client sends back, 0: none expected
	}{
		{"close frame", func(*rawConn) []byte {
			return frame(true, opClose, websocket.FormatCloseMessage(4001, "bye"))
		}, ErrClosed, `code 4001 "bye"`, 4001},
		{"empty close frame", func(*rawConn) []byte { return frame(true, opClose, nil) }, ErrClosed, "code 1005", 0},
		{"kick", func(*rawConn) []byte {
			return frame(true, opBinary, pomelo.AppendPackage(nil, pomelo.Kick, []byte(`{"reason":"slow"}`)))
		}, ErrKicked, "slow", 0},
		{"eof", nil, ErrClosed, "code 1006", 0},
		{"protocol error", func(*rawConn) []byte { return []byte{0x82 | 0x20, 0} }, nil, "RSV2", websocket.CloseProtocolError},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				srv, f := startFleet(t, Options{Pollers: m.pollers})
				s := newSink()
				var kicked atomic.Int32
				h := s.handlers()
				h.Kick = func(*Client, []byte) { kicked.Add(1) }
				c, sc := srv.accept(t, f, h)
				reqErr := make(chan error, 1)
				if err := c.Request("connector.entryHandler.enter", []byte(`{}`), func(_ []byte, _ int64, err error) {
					reqErr <- err
				}); err != nil {
					t.Fatal(err)
				}
				<-sc.reqs // the request reached the server: it stays unanswered
				if tc.end == nil {
					sc.raw.Close()
				} else {
					sc.write(t, tc.end(sc))
				}
				s.wait(t, "closed", func() bool { return len(s.closed) == 1 })
				err := s.closed[0]
				if (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || err == nil || !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("Closed(%v), want %v with %q", err, tc.wantErr, tc.wantText)
				}
				if e := <-reqErr; !errors.Is(e, ErrClosed) {
					t.Errorf("pending request failed with %v, want ErrClosed", e)
				}
				if tc.wantErr == ErrKicked && kicked.Load() != 1 {
					t.Errorf("kick handler ran %d times", kicked.Load())
				}
				<-c.Done()
				if tc.echo != 0 {
					sc.wantClose(t, tc.echo)
				}
				c.Close() // after the end: no second Closed
				if len(s.closed) != 1 {
					t.Errorf("Closed ran %d times", len(s.closed))
				}
			})
		}
	}
}

// TestDataThenEOF: frames followed at once by the end of the stream (data
// and FIN reported in one event): every frame is delivered, then Closed.
func TestDataThenEOF(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv, f := startFleet(t, Options{Pollers: m.pollers})
			for range 50 {
				s := newSink()
				c, sc := srv.accept(t, f, s.handlers())
				sc.write(t, append(pushFrame("onA", "1"), pushFrame("onB", "2")...))
				sc.raw.Close()
				s.wait(t, "closed", func() bool { return len(s.closed) == 1 })
				if len(s.pushes) != 2 || !errors.Is(s.closed[0], ErrClosed) || !strings.Contains(s.closed[0].Error(), "1006") {
					t.Fatalf("pushes %q, closed %v; want 2 pushes then code 1006", s.pushes, s.closed[0])
				}
				<-c.Done()
			}
		})
	}
}

// TestResponses: responses reach their callbacks by id; pings are answered.
func TestResponses(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv, f := startFleet(t, Options{Pollers: m.pollers})
			c, sc := srv.accept(t, f, nil)
			defer c.Close()
			go func() { // answer every request with its id, after a ping
				for req := range sc.reqs {
					_ = pomelo.ForEachPackage(req, 0, func(p pomelo.Package) error {
						msg, err := pomelo.ParseMessage(p.Body)
						if err != nil || msg.Type != pomelo.Request {
							return nil
						}
						r := pomelo.Message{Type: pomelo.Response, ID: msg.ID, Body: fmt.Appendf(nil, `{"id":%d}`, msg.ID)}
						b, _ := pomelo.AppendData(nil, &r)
						sc.write(t, append(frame(true, opPing, []byte("x")), frame(true, opBinary, b)...))
						return nil
					})
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, err := c.Call(ctx, "chat.chatHandler.send", []byte(`{}`))
					if err != nil || !bytes.HasPrefix(body, []byte(`{"id":`)) {
						t.Errorf("call: %s %v", body, err)
					}
				}()
			}
			wg.Wait()
			for range 50 {
				select {
				case p := <-sc.pongs:
					if p != "x" {
						t.Fatalf("pong %q", p)
					}
				case <-ctx.Done():
					t.Fatal("missing pongs")
				}
			}
		})
	}
}

// TestCloseRacesData: a local Close while the server floods the socket:
// Closed runs once with nil, the socket is closed (the server's writes fail).
func TestCloseRacesData(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			srv, f := startFleet(t, Options{Pollers: m.pollers})
			var chunk []byte
			for range 64 {
				chunk = append(chunk, pushFrame("onChat", `{"msg":"flood"}`)...)
			}
			for i := range 30 {
				s := newSink()
				c, sc := srv.accept(t, f, s.handlers())
				flooded := make(chan struct{})
				go func() {
					defer close(flooded)
					for {
						sc.raw.SetWriteDeadline(time.Now().Add(10 * time.Second))
						if _, err := sc.raw.Write(chunk); err != nil {
							return // the client's socket is gone
						}
					}
				}()
				s.wait(t, "the flood", func() bool { return len(s.pushes) > i*10 })
				c.Close()
				s.wait(t, "closed", func() bool { return len(s.closed) == 1 })
				<-c.Done()
				if s.closed[0] != nil {
					t.Fatalf("local close reported %v", s.closed[0])
				}
				<-flooded
				c.Close()
				sc.raw.Close()
			}
		})
	}
}

// TestManyClients: 1,200 clients on one fleet of 2 loops: every one gets its
// own push; half close locally, the server closes the rest; every Closed
// once with the right error; the loops exit after Fleet.Close.
func TestManyClients(t *testing.T) {
	const n = 1200
	srv := startRawServer(t)
	f := NewFleet(Options{Pollers: 2})
	var mu sync.Mutex
	got := map[*Client]string{}
	closed := map[*Client][]error{}
	all := make(chan struct{}, n)
	h := &Handlers{
		Push: func(p *Push) {
			mu.Lock()
			got[p.Client] = string(p.Body)
			mu.Unlock()
		},
		Closed: func(c *Client, err error) {
			mu.Lock()
			closed[c] = append(closed[c], err)
			mu.Unlock()
			all <- struct{}{}
		},
	}
	clients := make([]*Client, n)
	conns := make([]*rawConn, n)
	for i := range n {
		clients[i], conns[i] = srv.accept(t, f, h)
		clients[i].ID = int32(i)
	}
	for i := range n {
		conns[i].write(t, pushFrame("onChat", fmt.Sprint(i)))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pushes", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	for i, c := range clients {
		if got[c] != fmt.Sprint(i) {
			t.Fatalf("client %d got %q", i, got[c])
		}
	}
	f.Close() // the loops keep serving their clients
	for i := range n {
		if i%2 == 0 {
			clients[i].Close()
		} else {
			conns[i].raw.Close()
		}
	}
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case <-all:
		case <-timeout:
			t.Fatal("not every client closed")
		}
	}
	mu.Lock()
	for i, c := range clients {
		errs := closed[c]
		if len(errs) != 1 || (i%2 == 0) != (errs[0] == nil) {
			t.Fatalf("client %d: Closed %v", i, errs)
		}
	}
	mu.Unlock()
	deadline = time.Now().Add(10 * time.Second)
	for f.polls.running() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a loop did not exit after Fleet.Close and its last client")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkReceive is the receive path through real loopback sockets: 16
// clients, the server (same process) writes 1 or 8 small onChat frames per
// write; one op is one frame read, parsed and handed to the push handler,
// plus the server's share of the write. Compare with BenchmarkPushPath (the
// parse alone).
func BenchmarkReceive(b *testing.B) {
	for _, m := range modes {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/frames-per-write=%d", m.name, batch), func(b *testing.B) {
				benchReceive(b, m.pollers, batch)
			})
		}
	}
}

func benchReceive(b *testing.B, pollers, batch int) {
	const clients = 16
	srv := startRawServer(b)
	f := NewFleet(Options{Pollers: pollers})
	defer f.Close()
	var got atomic.Int64
	h := &Handlers{Push: func(p *Push) {
		if _, ok := ChatMsg(p); ok {
			got.Add(1)
		}
	}}
	conns := make([]*rawConn, clients)
	for i := range clients {
		c, sc := srv.accept(b, f, h)
		defer c.Close()
		conns[i] = sc
	}
	var chunk []byte
	for range batch {
		chunk = append(chunk, pushFrame("onChat",
			`{"msg":"~1.2.3.4~xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","from":"u000001","target":"*"}`)...)
	}
	writes := (b.N + batch - 1) / batch
	want := int64(writes * batch)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, sc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := i; w < writes; w += clients {
				if _, err := sc.raw.Write(chunk); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d frames received", got.Load(), want)
		}
		time.Sleep(50 * time.Microsecond)
	}
}
