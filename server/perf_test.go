package server_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/internal/testwait"
	"github.com/chatbench/chatbench/internal/wsout"
	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/servertest"
)

// BenchmarkStorm is BenchmarkRoomBroadcast with several senders at once (a
// broadcast storm in one room), with the writer's load-only coalescing on
// (the default) and off (flush as soon as anything is queued), to show what
// the coalescing buys under overload (docs/perf.md).
func BenchmarkStorm(b *testing.B) {
	for _, tc := range []struct {
		members, senders int
		coalesce         time.Duration
	}{
		{100, 10, 0}, {100, 10, -1}, {1000, 10, 0}, {1000, 10, -1},
	} {
		mode := "on"
		if tc.coalesce < 0 {
			mode = "off"
		}
		b.Run(fmt.Sprintf("members=%d/senders=%d/coalesce=%s", tc.members, tc.senders, mode), func(b *testing.B) {
			runFanout(b, tc.members, tc.senders, tc.coalesce)
		})
	}
}

// runFanout has senders members of one room broadcast b.N 64-byte messages
// in total to a room of members raw websocket readers, with at most 64
// messages per sender in flight so queues stay bounded, and reports
// deliveries/s and CPU per delivery (server and readers: one process).
// coalesce is the writer's CoalesceMax (0 default, negative off).
func runFanout(b *testing.B, members, senders int, coalesce time.Duration) {
	s := servertest.Start(b, server.Options{Connector: connector.Options{RequestRate: -1, Heartbeat: -1, Options: wsout.Options{CoalesceMax: coalesce, Load: wsout.MachineLoad()}}}) // the load probe, as chatbench serve runs it
	var delivered atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, members)
	for i := range members {
		conns[i] = rawMember(b, s.ConnectorAddrs[0], fmt.Sprintf("m%d", i), &delivered, &wg)
	}
	testwait.Until(b, 60*time.Second, func() error {
		if n := s.Rooms().Stats().Members; n < members {
			return fmt.Errorf("%d of %d members entered", n, members)
		}
		return nil
	})
	content := bytes.Repeat([]byte("x"), 64)
	body := fmt.Appendf(nil, `{"content":%q,"target":"*"}`, content)
	const window = 64 // messages in flight per sender, so queues stay bounded
	var sent atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := delivered.Load()
	var swg sync.WaitGroup
	for k := range senders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for i := k; i < b.N; i += senders {
				for (sent.Load()-int64(senders*window))*int64(members) > delivered.Load()-start {
					time.Sleep(50 * time.Microsecond) // pacing the load (flow control); the wait for the deliveries below has a deadline
				}
				sent.Add(1)
				pkt, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: uint32(i + 2), Route: "chat.chatHandler.send", Body: body})
				if err := conns[k].WriteMessage(websocket.BinaryMessage, pkt); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	swg.Wait()
	want := start + int64(b.N)*int64(members)
	testwait.Until(b, time.Minute, func() error {
		if d := delivered.Load(); d < want {
			return fmt.Errorf("delivered %d of %d", d-start, want-start)
		}
		return nil
	})
	b.StopTimer()
	n := float64(int64(b.N) * int64(members))
	b.ReportMetric(n/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/n, "cpu-ns/delivery")
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
}

// cpuTime is this process's user+system CPU time: per delivery it is a
// figure other processes on a shared machine disturb much less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// frameCounter is a raw member that counts websocket frames and onChat
// packages, and notes when the first onChat arrived.
type frameCounter struct {
	frames, chats atomic.Int64
	first         atomic.Int64 // unix nanos of the first onChat
}

func dialCounter(t *testing.T, addr, name string) (*websocket.Conn, *frameCounter) {
	t.Helper()
	conn := rawEnter(t, nil, addr, name, "r")
	fc := &frameCounter{}
	go readChats(conn, func(n int) {
		fc.first.CompareAndSwap(0, time.Now().UnixNano())
		fc.frames.Add(1)
		fc.chats.Add(int64(n))
	})
	return conn, fc
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.True(t, 10*time.Second, what, cond)
}

// TestWriterCoalescing checks the writer's two regimes: a push to an idle
// session goes out at once (no coalescing window at light load), and a burst
// is written in far fewer frames than packages.
func TestWriterCoalescing(t *testing.T) {
	s := servertest.Start(t, server.Options{Connector: connector.Options{RequestRate: -1, Heartbeat: -1}})
	sender, _ := dialCounter(t, s.ConnectorAddrs[0], "sender")
	_, rx := dialCounter(t, s.ConnectorAddrs[0], "rx")
	waitFor(t, "two members", func() bool { return s.Rooms().Stats().Members == 2 })
	send := func(id int) {
		pkt, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: uint32(id), Route: "chat.chatHandler.send",
			Body: []byte(`{"content":"hello","target":"*"}`)})
		if err := sender.WriteMessage(websocket.BinaryMessage, pkt); err != nil {
			t.Fatal(err)
		}
	}

	// light load: one push, delivered without a window
	t0 := time.Now()
	send(2)
	waitFor(t, "the first push", func() bool { return rx.chats.Load() == 1 })
	if d := time.Duration(rx.first.Load() - t0.UnixNano()); d > 500*time.Millisecond {
		t.Errorf("a lone push took %v", d)
	}

	// a burst: many packages per frame
	const burst = 2000
	for i := range burst {
		send(3 + i)
	}
	waitFor(t, "the burst", func() bool { return rx.chats.Load() == 1+burst })
	frames := rx.frames.Load() - 1
	t.Logf("burst of %d pushes arrived in %d frames", burst, frames)
	// how many pushes share a frame depends on the scheduling of a busy
	// machine (go test runs other packages beside this one); the test asks
	// only that a burst is coalesced at all: written one push a frame it
	// would take 2,000 frames. The gain is measured by BenchmarkStorm
	// (coalesce=on against coalesce=off).
	if frames*10 > burst*9 {
		t.Errorf("burst of %d pushes arrived in %d frames: want at least 10%% fewer frames than pushes", burst, frames)
	}
}
