package server_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// rawMember enters the benchmark room on a bare websocket and counts the
// onChat pushes it reads into delivered; it keeps the client side as cheap
// as possible.
func rawMember(b *testing.B, addr, name string, delivered *atomic.Int64, wg *sync.WaitGroup) *websocket.Conn {
	conn := rawEnter(b, nil, addr, name, "bench")
	wg.Add(1)
	go func() {
		defer wg.Done()
		readChats(conn, func(n int) { delivered.Add(int64(n)) })
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
			runFanout(b, members, 1, 0)
		})
	}
}
