package client

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"
)

func memNow() (heap, stack int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.MSpanInuse + ms.MCacheInuse), int64(ms.StackInuse)
}

// TestIdleMemory measures the memory of N idle connected clients against a
// server in another process: CHATBENCH_IDLE_TARGET=host:port (a connector)
// CHATBENCH_IDLE_N=10000 go test -run TestIdleMemory -v ./bench/client
// Measured 2026-11-25 (2 cores, server in another process): 7,127 B per
// client at 10,000 (3,018 B heap + 4,109 B reader goroutine stack); with the
// epoll receive loops (the linux default) 2,638 B (2,429 B heap + 210 B of
// stacks); Options.Pollers -1 gives the reader goroutines back (7,190 B).
func TestIdleMemory(t *testing.T) {
	target := os.Getenv("CHATBENCH_IDLE_TARGET")
	if target == "" {
		t.Skip("set CHATBENCH_IDLE_TARGET=host:port of a connector (server in another process)")
	}
	n, _ := strconv.Atoi(os.Getenv("CHATBENCH_IDLE_N"))
	if n <= 0 {
		n = 10000
	}
	f := NewFleet(Options{})
	defer f.Close()
	h0, s0 := memNow()
	clients := make([]*Client, 0, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sem := make(chan struct{}, 64)
	res := make(chan *Client, n)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			c, err := f.Dial(ctx, target, &Handlers{})
			if err != nil {
				t.Errorf("dial: %v", err)
			}
			res <- c
		}()
	}
	for range n {
		if c := <-res; c != nil {
			clients = append(clients, c)
		}
	}
	time.Sleep(4 * time.Second) // the point: the measure includes what a heartbeat round leaves behind; nothing is awaited
	h1, s1 := memNow()
	per := float64((h1-h0)+(s1-s0)) / float64(len(clients))
	t.Logf("%d idle clients: heap %.0f B + stacks %.0f B = %.0f B per client",
		len(clients), float64(h1-h0)/float64(len(clients)), float64(s1-s0)/float64(len(clients)), per)
	if path := os.Getenv("CHATBENCH_IDLE_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	for _, c := range clients {
		c.Close()
	}
}
