package server_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/connector"
	"github.com/chatbench/chatbench/server/servertest"
)

// rawMember is a bare websocket reader that counts onChat pushes; it keeps
// the benchmark's client side as cheap as possible.
func rawMember(b *testing.B, addr, name string, delivered *atomic.Int64, wg *sync.WaitGroup) *websocket.Conn {
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		b.Fatal(err)
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.AppendPackage(nil, pomelo.Handshake, pomelo.DefaultHandshakeRequest()))
	if _, _, err := conn.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	_ = conn.WriteMessage(websocket.BinaryMessage, pomelo.HandshakeAckPackage)
	enter, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: 1, Route: "connector.entryHandler.enter",
		Body: fmt.Appendf(nil, `{"username":%q,"rid":"bench"}`, name)})
	_ = conn.WriteMessage(websocket.BinaryMessage, enter)
	onChat := []byte("\x06onChat")
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, frame, err := conn.ReadMessage()
			if err != nil {
				return
			}
			n := 0
			_ = pomelo.ForEachPackage(frame, 0, func(p pomelo.Package) error {
				if p.Type == pomelo.Data && len(p.Body) > 8 && p.Body[0] == 0x06 && bytes.HasPrefix(p.Body[1:], onChat) {
					n++
				}
				return nil
			})
			if n > 0 {
				delivered.Add(int64(n))
			}
		}
	}()
	return conn
}

// BenchmarkRoomBroadcast measures the single-process server fanning one
// sender's messages out to a room of loopback websocket members (client
// readers in this same process share the 2 cores: the separate-process
// figure comes from `make bench`).
func BenchmarkRoomBroadcast(b *testing.B) {
	for _, members := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d/payload=64B", members), func(b *testing.B) {
			s := servertest.Start(b, server.Options{Connector: connector.Options{RequestRate: -1, Heartbeat: -1}})
			var delivered atomic.Int64
			var wg sync.WaitGroup
			conns := make([]*websocket.Conn, members)
			t0 := time.Now()
			for i := range members {
				conns[i] = rawMember(b, s.ConnectorAddrs[0], fmt.Sprintf("m%d", i), &delivered, &wg)
			}
			b.Logf("dialed %d in %v", members, time.Since(t0))
			deadline := time.Now().Add(30 * time.Second)
			for s.Rooms().Stats().Members < members {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d members entered", s.Rooms().Stats().Members, members)
				}
				time.Sleep(time.Millisecond)
			}
			sender := conns[0]
			content := bytes.Repeat([]byte("x"), 64)
			body := fmt.Appendf(nil, `{"content":%q,"target":"*"}`, content)
			const window = 32 // messages in flight, so queues stay bounded
			b.ReportAllocs()
			b.ResetTimer()
			start := delivered.Load()
			for i := range b.N {
				for int64(i-window)*int64(members) > delivered.Load()-start {
					time.Sleep(50 * time.Microsecond)
				}
				pkt, _ := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: uint32(i + 2), Route: "chat.chatHandler.send", Body: body})
				if err := sender.WriteMessage(websocket.BinaryMessage, pkt); err != nil {
					b.Fatal(err)
				}
			}
			want := start + int64(b.N)*int64(members)
			for delivered.Load() < want {
				if time.Now().After(deadline.Add(time.Minute)) {
					b.Fatalf("delivered %d of %d", delivered.Load()-start, want-start)
				}
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(int64(b.N)*int64(members))/b.Elapsed().Seconds(), "deliveries/s")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}
