package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type recorder struct {
	mu     sync.Mutex
	pushes []string // route + " " + msg/user
	closed []error
}

func (r *recorder) handlers() *client.Handlers {
	return &client.Handlers{
		Push: func(p *client.Push) {
			var s string
			switch string(p.Route) {
			case "onChat":
				msg, ok := client.ChatMsg(p)
				if !ok {
					s = "onChat <bad>"
				} else {
					s = "onChat " + string(msg)
				}
			default:
				s = string(p.Route) + " " + string(client.UserField(p))
			}
			r.mu.Lock()
			r.pushes = append(r.pushes, s)
			r.mu.Unlock()
		},
		Closed: func(c *client.Client, err error) {
			r.mu.Lock()
			r.closed = append(r.closed, err)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pushes {
		if p == s {
			return true
		}
	}
	return false
}

func enter(t *testing.T, f *client.Fleet, gate, name, rid string, h *client.Handlers) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := f.QueryEntry(ctx, gate, name)
	if err != nil {
		t.Fatalf("queryEntry: %v", err)
	}
	c, err := f.Dial(ctx, addr, h)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	body, _ := json.Marshal(map[string]string{"username": name, "rid": rid})
	resp, err := c.Call(ctx, "connector.entryHandler.enter", body)
	if err != nil {
		t.Fatalf("enter: %v", err)
	}
	var users struct{ Users []string }
	if err := json.Unmarshal(resp, &users); err != nil {
		t.Fatalf("enter response %s: %v", resp, err)
	}
	return c
}

func TestEnterChatLeave(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	f := client.NewFleet(client.Options{})
	defer f.Close()
	ra, rb := &recorder{}, &recorder{}
	a := enter(t, f, srv.GateAddr, "alice", "r1", ra.handlers())
	b := enter(t, f, srv.GateAddr, "bob", "r1", rb.handlers())
	waitFor(t, "alice sees bob's onAdd", 5*time.Second, func() bool { return ra.has("onAdd bob") })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Call(ctx, "chat.chatHandler.send", []byte(`{"rid":"r1","content":"hi \"all\"","from":"bob","target":"*"}`)); err != nil {
		t.Fatalf("send: %v", err)
	}
	for _, r := range []*recorder{ra, rb} {
		waitFor(t, "onChat at both", 5*time.Second, func() bool { return r.has(`onChat hi \"all\"`) })
	}
	// an error response comes back as a *ResponseError with its code
	_, err := b.Call(ctx, "chat.chatHandler.send", []byte(`{"rid":"r1","content":"psst","from":"bob","target":"nobody"}`))
	var re *client.ResponseError
	if !errors.As(err, &re) || re.Code != 500 {
		t.Errorf("send to an unknown target: %v, want a code 500 response error", err)
	}
	b.Close()
	waitFor(t, "bob's closed handler", 5*time.Second, func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return len(rb.closed) == 1
	})
	if rb.closed[0] != nil {
		t.Errorf("local close reported %v, want nil", rb.closed[0])
	}
	waitFor(t, "alice sees bob's onLeave", 5*time.Second, func() bool { return ra.has("onLeave bob") })
	a.Close()
}

// TestManyRequests: concurrent requests on one socket, past id 128, each
// callback exactly once, none left pending.
func TestManyRequests(t *testing.T) {
	srv := servertest.Start(t, server.Options{Connector: connectorUnlimited()})
	f := client.NewFleet(client.Options{})
	defer f.Close()
	c := enter(t, f, srv.GateAddr, "carol", "r2", nil)
	const n = 300
	var got atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"rid":"r2","content":"m%d","from":"carol","target":"*"}`, i)
			err := c.Request("chat.chatHandler.send", []byte(body), func(b []byte, _ int64, err error) {
				if err != nil || client.ParseError("send", b) != nil {
					t.Errorf("response: %v %s", err, b)
				}
				got.Add(1)
			})
			if err != nil {
				t.Errorf("request: %v", err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every response", 10*time.Second, func() bool { return got.Load() == n })
	if p := c.Pending(); p != 0 {
		t.Errorf("%d requests still pending", p)
	}
	c.Close()
}

// TestHeartbeats: the shared wheel keeps a client alive past the server's
// heartbeat timeout (2 x 1 s here).
func TestHeartbeats(t *testing.T) {
	opts := server.Options{}
	opts.Connector.Heartbeat = time.Second
	srv := servertest.Start(t, opts)
	f := client.NewFleet(client.Options{})
	defer f.Close()
	r := &recorder{}
	c := enter(t, f, srv.GateAddr, "dave", "r3", r.handlers())
	if c.Heartbeat() != time.Second {
		t.Fatalf("heartbeat %v, want 1s from the handshake", c.Heartbeat())
	}
	select { // alive for longer than the 2 s silence timeout
	case <-c.Done():
		t.Fatalf("client closed: %v", r.closed)
	case <-time.After(3500 * time.Millisecond):
	}
	c.Close()
}

func TestQueryEntryErrors(t *testing.T) {
	f := client.NewFleet(client.Options{HandshakeTimeout: time.Second})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := f.QueryEntry(ctx, "127.0.0.1:1", "x")
	var se *client.StepError
	if !errors.As(err, &se) || se.Step != "connect" {
		t.Errorf("queryEntry at a closed port: %v, want a connect StepError", err)
	}
}

// TestSourceAddrs: with SourceAddrs 3 the sockets come from 127.0.0.1..3.
func TestSourceAddrs(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	f := client.NewFleet(client.Options{SourceAddrs: 3})
	defer f.Close()
	seen := map[string]bool{}
	for i := range 6 {
		c := enter(t, f, srv.GateAddr, fmt.Sprintf("src%d", i), "r4", nil)
		host, _, _ := net.SplitHostPort(c.LocalAddr().String())
		seen[host] = true
		defer c.Close()
	}
	for _, want := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if !seen[want] {
			t.Errorf("no socket from %s (saw %v)", want, seen)
		}
	}
}
