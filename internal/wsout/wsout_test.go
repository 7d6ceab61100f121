package wsout

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/pomelo"
)

// dialWriter starts a websocket server whose connection writes through a
// Writer and reads until the client goes (then closes the Writer, as a
// server does). It returns the client's end and the Writer.
func dialWriter(t *testing.T, opts Options) (*websocket.Conn, *Writer) {
	t.Helper()
	if opts.Load == nil {
		opts.Load = &testLoad
	}
	opts = opts.WithDefaults()
	return dialStarted(t, &opts)
}

// dialStarted is dialWriter with opts given to Start as they are.
func dialStarted(t *testing.T, opts *Options) (*websocket.Conn, *Writer) {
	t.Helper()
	got := make(chan *Writer, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(rw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		w := new(Writer)
		w.Start(c, opts)
		got <- w
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		w.Close(websocket.CloseNormalClosure, "")
		<-w.Done()
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, <-got
}

// Start fills in the defaults of Options that did not go through
// WithDefaults: a zero MaxQueueBytes is 4 MiB, not "kick every client", and
// writers given the same *Options share one defaulted copy.
func TestStartAppliesDefaults(t *testing.T) {
	for _, o := range []*Options{{}, {Load: &testLoad, FlushWindow: -1}} {
		c, w := dialStarted(t, o)
		if w.opts == o || w.opts.MaxQueueBytes != 4<<20 || w.opts.WriteTimeout <= 0 || w.opts.MaxFrameBytes <= 0 {
			t.Fatalf("Start with %+v: writer options %+v, want the defaults", *o, *w.opts)
		}
		for i := range 3 {
			if err := w.Enqueue(pomelo.AppendPackage(nil, pomelo.Data, []byte{'a' + byte(i)})); err != nil {
				t.Fatalf("Enqueue %d: %v", i, err)
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for got := 0; got < 3; {
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("after %d packages: %v", got, err)
			}
			got += len(b) / 5 // one 5-byte package each (4-byte header + 1)
		}
		_, w2 := dialStarted(t, o)
		if w2.opts != w.opts {
			t.Errorf("two writers of one *Options got two defaulted copies")
		}
	}
}

// Concurrent Enqueues, direct writes, queued batches and partial writes must
// deliver every package exactly once, each sender's in order, in whole
// frames. The client reads only after every sender returned, so with large
// packages the kernel takes part of a direct write and the writer goroutine
// finishes it.
func TestEnqueueOrderAndWholeFrames(t *testing.T) {
	for _, tc := range []struct {
		name         string
		gap          time.Duration
		senders      int
		size         int
		perSend      int
		spacing      time.Duration // busy-wait between a sender's packages
		readLate     bool          // the client reads only after every sender returned
		partial      bool          // the kernel must refuse part of a direct or flusher's write
		busy         bool          // the machine is saturated
		flushed      bool          // flushers must write some packages
		smallBuffers bool          // a 16 KiB send buffer
	}{
		{name: "direct-when-idle", gap: time.Nanosecond, senders: 8, size: 40, perSend: 3000},
		{name: "default-gap", senders: 8, size: 40, perSend: 3000},
		{name: "never-direct", gap: -1, senders: 8, size: 40, perSend: 3000},
		// a trickle makes the writer finish small batches while packages
		// arrive: a lost wake-up there stalls the session for good
		{name: "never-direct-trickle", gap: -1, senders: 1, size: 40, perSend: 5000, spacing: 20 * time.Microsecond},
		{name: "default-gap-trickle", senders: 2, size: 40, perSend: 5000, spacing: 20 * time.Microsecond},
		{name: "partial-writes-one-sender", gap: time.Nanosecond, senders: 1, size: 8000, perSend: 2000, readLate: true, partial: true},
		{name: "partial-writes", gap: time.Nanosecond, senders: 8, size: 8000, perSend: 300, readLate: true},
		// more than flushMaxBytes per window: the writer goroutine takes over
		{name: "saturated", senders: 8, size: 40, perSend: 3000, busy: true},
		{name: "saturated-trickle", senders: 2, size: 40, perSend: 2000, spacing: 300 * time.Microsecond, busy: true, flushed: true},
		// one package per flush (spaced past the flush window) into small
		// socket buffers: a flusher's write is cut short
		{name: "saturated-partial-writes", senders: 1, size: 20 << 10, perSend: 100, spacing: 3 * time.Millisecond, readLate: true, partial: true, busy: true, flushed: true, smallBuffers: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			senders := tc.senders
			partial0, flushed0 := partialWrites.Load(), flushWrites.Load()
			testLoad.Set(tc.busy)
			defer testLoad.Set(false)
			c, s := dialWriter(t, Options{DirectWriteGap: tc.gap, MaxQueueBytes: 64 << 20})
			if tc.smallBuffers {
				if err := s.sock.nc.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for g := range senders {
				wg.Go(func() {
					for i := range tc.perSend {
						body := make([]byte, tc.size)
						binary.BigEndian.PutUint32(body, uint32(g))
						binary.BigEndian.PutUint32(body[4:], uint32(i))
						if err := s.Enqueue(pomelo.AppendPackage(nil, pomelo.Data, body)); err != nil {
							t.Errorf("sender %d: package %d: %v", g, i, err)
							return
						}
						for t0 := time.Now(); time.Since(t0) < tc.spacing; {
						}
					}
				})
			}
			if tc.readLate {
				wg.Wait()
			} else {
				defer wg.Wait()
			}
			next := make([]uint32, senders)
			total := 0
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for total < senders*tc.perSend {
				kind, frame, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("after %d packages: %v", total, err)
				}
				if kind != websocket.BinaryMessage {
					t.Fatalf("frame kind %d", kind)
				}
				err = pomelo.ForEachPackage(frame, 0, func(p pomelo.Package) error {
					if len(p.Body) != tc.size {
						return fmt.Errorf("package of %d bytes, want %d", len(p.Body), tc.size)
					}
					g, i := binary.BigEndian.Uint32(p.Body), binary.BigEndian.Uint32(p.Body[4:])
					if int(g) >= senders || i != next[g] {
						return fmt.Errorf("sender %d: package %d, want %d", g, i, next[g])
					}
					next[g]++
					total++
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.partial && partialWrites.Load() == partial0 {
				t.Fatal("no write was cut short: the partial-write path was not exercised")
			}
			if flushed := flushWrites.Load() > flushed0; flushed && !tc.busy || !flushed && tc.flushed {
				t.Fatalf("saturated %v: flushers wrote %v", tc.busy, flushed)
			}
			// the writer clears its flag just after the client has the bytes
			testwait.Until(t, 5*time.Second, func() error {
				s.mu.Lock()
				writing, pend, queued := s.writing, s.pend, len(s.queue)
				s.mu.Unlock()
				if writing || pend != nil || queued != 0 {
					return fmt.Errorf("after the last package: writing %v, pend %d bytes, queue %d", writing, len(pend), queued)
				}
				return nil
			})
		})
	}
}

// The Writer is the socket's only writer: a ping is answered through it.
func TestPingGetsPong(t *testing.T) {
	c, _ := dialWriter(t, Options{})
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go c.ReadMessage() // runs the pong handler
	select {
	case got := <-pong:
		if got != "hello" {
			t.Fatalf("pong %q, want hello", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

// A client's close frame is answered with a close frame (code 1000).
func TestCloseIsEchoed(t *testing.T) {
	c, _ := dialWriter(t, Options{})
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("read after close = %v, want a close frame with code 1000", err)
	}
}

func TestAppendFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x82, 0}},
		{125, []byte{0x82, 125}},
		{126, []byte{0x82, 126, 0, 126}},
		{65535, []byte{0x82, 126, 0xff, 0xff}},
		{65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, websocket.BinaryMessage, tc.n); string(got) != string(tc.want) {
			t.Errorf("header(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
}

// A client that vanishes (reset) while direct writes are under way: the
// writes fail while the reader closes the Writer, and the Writer must still
// finish (a writer that waits for a failed direct write's signal forever
// leaves a session, and its room membership, behind).
// The same on a saturated machine, where flushers write.
func TestWriterFinishesWhenDirectWritesFail(t *testing.T) {
	defer testLoad.Set(false)
	for i := range 200 {
		busy := i%2 == 1
		testLoad.Set(busy)
		c, w := dialWriter(t, Options{DirectWriteGap: time.Nanosecond})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				pkt := pomelo.AppendPackage(nil, pomelo.Data, make([]byte, 100))
				for {
					select {
					case <-stop:
						return
					default:
					}
					if w.Enqueue(pkt) != nil {
						return
					}
				}
			})
		}
		c.NetConn().(*net.TCPConn).SetLinger(0) // close with a reset
		c.NetConn().Close()
		select {
		case <-w.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("run %d (saturated %v): the writer did not finish after the client reset", i, busy)
		}
		close(stop)
		wg.Wait()
	}
}

func TestParseCPU(t *testing.T) {
	busy, total, ok := parseCPU([]byte("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if !ok || busy != 160 || total != 980 {
		t.Fatalf("parseCPU = %d, %d, %v; want 160, 980, true", busy, total, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5"} {
		if _, _, ok := parseCPU([]byte(bad)); ok {
			t.Errorf("parseCPU(%q) ok, want not ok", bad)
		}
	}
}

// testLoad is the Load of this package's tests: they set it themselves, so
// that what they exercise does not depend on the machine's load.
var testLoad Load

var fanOpts = &Options{Load: &testLoad}

// On a saturated machine a push to an idle connection goes to a flusher
// (or, without flushers, the writer goroutine), not straight to the socket.
func TestSaturatedMachineQueues(t *testing.T) {
	defer testLoad.Set(false)
	for _, tc := range []struct {
		sat    bool
		window time.Duration
		way    string
	}{
		{false, 0, "direct"}, {true, 0, "flusher"}, {true, -1, "writer"}, {false, -1, "direct"},
	} {
		c, w := dialWriter(t, Options{DirectWriteGap: time.Nanosecond, FlushWindow: tc.window})
		testLoad.Set(tc.sat)
		direct0, flushed0 := directWrites.Load(), flushWrites.Load()
		if err := w.Enqueue(pomelo.AppendPackage(nil, pomelo.Data, []byte("x"))); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		way := "writer"
		switch {
		case directWrites.Load() > direct0:
			way = "direct"
		case flushWrites.Load() > flushed0:
			way = "flusher"
		}
		if way != tc.way {
			t.Errorf("saturated %v, flush window %v: written by the %s, want the %s", tc.sat, tc.window, way, tc.way)
		}
	}
}

// A flusher with nothing to do exits, and the next push on a saturated
// machine starts it again.
func TestIdleFlusherExitsAndRestarts(t *testing.T) {
	defer testLoad.Set(false)
	c, w := dialWriter(t, Options{DirectWriteGap: time.Nanosecond})
	set := w.opts.flush
	set.idleExit = 20 * time.Millisecond // before any flusher starts
	sh := &set.shards[w.shard]
	running := func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.started
	}
	testLoad.Set(true)
	for round := range 2 {
		flushed0 := flushWrites.Load()
		if err := w.Enqueue(pomelo.AppendPackage(nil, pomelo.Data, []byte("x"))); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		if flushWrites.Load() == flushed0 {
			t.Fatalf("round %d: the push was not written by a flusher", round)
		}
		testwait.True(t, 5*time.Second, fmt.Sprintf("round %d: the flusher's exit after its last write (idle exit 20ms)", round), func() bool { return !running() })
	}
}
