package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/chatproto"
	"github.com/chatbench/chatbench/pomelo"
)

// NeverReadOptions configure NeverRead. Zero values mean the documented
// defaults.
type NeverReadOptions struct {
	Gate    string // the gate's host:port; required
	Metrics string // the connector process's /metrics URL (its RSS); required
	Clients int    // never-reading clients; default 1000
	Rooms   int    // rooms they sit in, with one feeder each; default 10
	// FeedEvery is the interval between two messages of a room's feeder;
	// default 20ms. FeedBytes is their content size; default 2000.
	FeedEvery time.Duration
	FeedBytes int
	Duration  time.Duration // how long to hold them; default 30s
	Sample    time.Duration // default 1s
	Progress  io.Writer     // a line per sample; nil: none
}

// NeverReadSample is one read of the machine's and the server's memory.
type NeverReadSample struct {
	At          time.Duration
	RSS         float64 // server process_resident_memory_bytes
	SockMem     float64 // /proc/net/sockstat TCP mem, bytes (the whole machine: both ends of loopback sockets)
	Connections float64 // chatbench_connections of the server
	Kicked      float64 // chatbench_slow_consumers_total of the server
}

// NeverReadResult is what NeverRead saw.
type NeverReadResult struct {
	Baseline NeverReadSample // before the clients connected
	Samples  []NeverReadSample
	Entered  int // never-readers that connected and sent their enter
	Fed      uint64
}

// Peak returns the highest RSS and socket memory seen.
func (r *NeverReadResult) Peak() (rss, sock float64) {
	for _, s := range r.Samples {
		rss, sock = max(rss, s.RSS), max(sock, s.SockMem)
	}
	return rss, sock
}

// NeverRead connects Clients websocket clients that shake hands, enter a
// room, keep sending heartbeats (so only the outbound limits can end them)
// and never read a byte, while a feeder per room chats into it; it samples
// the server's RSS and the machine's TCP socket memory until Duration ends.
// A measurement harness: what the server does with them is the result.
func NeverRead(ctx context.Context, o NeverReadOptions) (*NeverReadResult, error) {
	if o.Gate == "" || o.Metrics == "" {
		return nil, errors.New("soak: never-readers need a gate address and the server's /metrics URL")
	}
	if o.Clients <= 0 {
		o.Clients = 1000
	}
	if o.Rooms <= 0 {
		o.Rooms = 10
	}
	if o.FeedEvery <= 0 {
		o.FeedEvery = 20 * time.Millisecond
	}
	if o.FeedBytes <= 0 {
		o.FeedBytes = 2000
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.Sample <= 0 {
		o.Sample = time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	res := &NeverReadResult{}
	start := time.Now()
	outer := ctx // samples outlive the load's context
	sample := func() NeverReadSample {
		ctx := outer
		s := NeverReadSample{At: time.Since(start)}
		if g, err := Scrape(ctx, o.Metrics); err == nil {
			s.RSS = g.RSS
		}
		s.SockMem = sockstatTCPMem()
		s.Connections = metricValue(ctx, o.Metrics, "chatbench_connections")
		s.Kicked = metricValue(ctx, o.Metrics, "chatbench_slow_consumers_total")
		return s
	}
	res.Baseline = sample()
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	fleet := client.NewFleet(client.Options{})
	defer fleet.Close()
	var fed atomic.Uint64
	var wg sync.WaitGroup
	for r := range o.Rooms {
		wg.Add(1)
		go func() { defer wg.Done(); feed(ctx, fleet, o, r, &fed) }()
	}
	var conns []net.Conn
	var mu sync.Mutex
	var dials sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range o.Clients {
		dials.Add(1)
		sem <- struct{}{}
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			c, err := neverReader(ctx, fleet, o.Gate, fmt.Sprintf("nr%d", i), fmt.Sprintf("nr-room-%d", i%o.Rooms))
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	dials.Wait()
	res.Entered = len(conns)
	// Heartbeats from every never-reader, until the end.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for _, c := range conns {
					_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					_, _ = c.Write(wsFrame(pomelo.HeartbeatPackage))
				}
			}
		}
	}()
	t := time.NewTicker(o.Sample)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		s := sample()
		res.Samples = append(res.Samples, s)
		fmt.Fprintf(o.Progress, "never-read %5.0fs rss=%.0fMiB tcp-mem=%.0fMiB connections=%.0f kicked=%.0f fed=%d\n",
			s.At.Seconds(), s.RSS/(1<<20), s.SockMem/(1<<20), s.Connections, s.Kicked, fed.Load())
	}
	wg.Wait()
	for _, c := range conns {
		_ = c.Close()
	}
	res.Fed = fed.Load()
	return res, nil
}

// neverReader dials the connector for name, sends handshake, ack and an
// enter into rid, and returns the raw socket: nobody ever reads it.
func neverReader(ctx context.Context, fleet *client.Fleet, gate, name, rid string) (net.Conn, error) {
	addr, err := fleet.QueryEntry(ctx, gate, name)
	if err != nil {
		return nil, err
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	c := ws.NetConn()
	hs := pomelo.AppendPackage(nil, pomelo.Handshake, []byte(`{"sys":{"type":"js-websocket","version":"0.0.1"},"user":{}}`))
	enter, err := pomelo.AppendData(nil, &pomelo.Message{Type: pomelo.Request, ID: 1, Route: chatproto.RouteEnter,
		Body: chatproto.AppendEnter(nil, name, rid)})
	if err != nil {
		c.Close()
		return nil, err
	}
	for _, p := range [][]byte{hs, pomelo.HandshakeAckPackage, enter} {
		if _, err := c.Write(wsFrame(p)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// wsFrame is one masked binary client frame of payload p.
func wsFrame(p []byte) []byte {
	b := []byte{0x82}
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, 0, 0, 0, 0) // a zero mask leaves the payload as it is
	return append(b, p...)
}

// feed chats into never-reader room r until ctx ends.
func feed(ctx context.Context, fleet *client.Fleet, o NeverReadOptions, r int, fed *atomic.Uint64) {
	rid := fmt.Sprintf("nr-room-%d", r)
	name := fmt.Sprintf("feeder%d", r)
	addr, err := fleet.QueryEntry(ctx, o.Gate, name)
	if err != nil {
		return
	}
	c, err := fleet.Dial(ctx, addr, &client.Handlers{})
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.Call(ctx, chatproto.RouteEnter, chatproto.AppendEnter(nil, name, rid)); err != nil {
		return
	}
	body := chatproto.AppendSend(nil, rid, strings.Repeat("n", o.FeedBytes), name, "*")
	t := time.NewTicker(o.FeedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.Request(chatproto.RouteSend, body, func([]byte, int64, error) {}) == nil {
			fed.Add(1)
		}
	}
}

// sockstatTCPMem is the machine's TCP socket memory from /proc/net/sockstat
// ("TCP: ... mem N", in pages), in bytes; 0 where there is none.
func sockstatTCPMem() float64 {
	f, err := os.Open("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(fields); i += 2 {
			if fields[i] == "mem" {
				pages, _ := strconv.ParseFloat(fields[i+1], 64)
				return pages * float64(os.Getpagesize())
			}
		}
	}
	return 0
}

// metricValue sums the samples of one metric (any labels) on a /metrics page.
func metricValue(ctx context.Context, url, name string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, _ := strconv.ParseFloat(rest[i+1:], 64)
			sum += v
		}
	}
	return sum
}
