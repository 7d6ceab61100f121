package cluster

import (
	"context"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/server/room"
	"github.com/chatbench/chatbench/server/servertest"
)

// startLocal runs a connectors x shards split cluster in this process on
// random ports, stopped in t.Cleanup.
func startLocal(t testing.TB, connectors, shards int, natsURLs ...string) *Local {
	t.Helper()
	topo := Generate(GenerateOptions{Connectors: connectors, Shards: shards, GatePort: -1, ConnectorPort: -1, HTTPPort: -1})
	// The suite checks semantics on a shared, loaded 2-core machine under -race:
	// give shard requests the test client's patience (fail-fast on a dead
	// shard is NATS "no responders", not this timeout; see the crash tests).
	bo := BusOptions{RequestTimeout: servertest.Timeout}
	l, err := StartLocal(NodeOptions{Topology: &topo, NATS: natsURLs, Bus: bo, Logger: testLogger()})
	if err != nil {
		t.Fatalf("start split cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return l
}

func TestSuiteSplitInProcess(t *testing.T) {
	servertest.RunSuite(t, func(t *testing.T) servertest.Target {
		l := startLocal(t, 2, 2)
		return servertest.Target{GateAddr: l.Gate.ClientAddr}
	})
}

// TestSuiteSpreads checks that the suite's names and rooms really exercise
// both connectors and both shards (dispatch is by crc32, fixed).
func TestSuiteSpreads(t *testing.T) {
	cases := []struct {
		what string
		a, b string
	}{
		{"users alice and bob on different connectors", "alice", "bob"},
		{"rooms a and b (SwitchRoom) on different shards", "a", "b"},
	}
	for _, tc := range cases {
		if room.Dispatch(tc.a, 2) == room.Dispatch(tc.b, 2) {
			t.Logf("%s: no (%d, %d): covered by the split tests instead", tc.what, room.Dispatch(tc.a, 2), room.Dispatch(tc.b, 2))
		}
	}
	seen := map[int]bool{}
	for i := range 10 {
		seen[room.Dispatch("room"+string(rune('0'+i)), 2)] = true
	}
	if len(seen) != 2 {
		t.Errorf("suite rooms room0..room9 all dispatch to one shard")
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("CHATBENCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestBusReconnect: when NATS goes away and comes back, connectors kick the
// members of their rooms (deliveries of the gap are lost); the cluster then
// works again.
func TestBusReconnect(t *testing.T) {
	ns, err := StartNATS("127.0.0.1", -1)
	if err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	var ns2 *natsserver.Server // outlives the cluster: cleanups run last-in first-out
	t.Cleanup(func() {
		for _, s := range []*natsserver.Server{ns, ns2} {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	l := startLocal(t, 2, 1, url)
	cs := make([]*servertest.Client, 2)
	for i := range 2 {
		cs[i], _ = servertest.Enter(t, l.Gate.ClientAddr, usersOn("u", i, 2, 1)[0], "r")
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if ns2, err = StartNATS("127.0.0.1", portOf(strings.TrimPrefix(url, "nats://"))); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if _, kicks := c.WaitClosed(); len(kicks) != 1 || !strings.Contains(kicks[0], "bus reconnected") {
			t.Errorf("client %d kicks = %v, want a bus-reconnected kick", i, kicks)
		}
	}
	// The shard may reconnect after the connectors: poll until it answers.
	deadline := time.Now().Add(servertest.Timeout)
	var users []string
	var a, b *servertest.Client
	for i, name := range []string{usersOn("v", 0, 2, 1)[0], usersOn("v", 1, 2, 1)[0]} {
		for {
			c := servertest.Dial(t, l.Conns[i].ClientAddr)
			r := c.Request("connector.entryHandler.enter", map[string]any{"username": name, "rid": "r"})
			if raw, ok := r["users"].([]any); ok {
				users = users[:0]
				for _, u := range raw {
					users = append(users, u.(string))
				}
				a, b = b, c
				break
			}
			if r["code"] != float64(504) || time.Now().After(deadline) {
				t.Fatalf("enter %s after the reconnect = %v", name, r)
			}
			c.Close()
			time.Sleep(20 * time.Millisecond) // the shard is reconnecting; retry, bounded by the deadline
		}
	}
	if len(users) != 2 {
		t.Fatalf("users after the reconnect = %v, want only the two new members (no ghosts)", users)
	}
	b.Request("chat.chatHandler.send", map[string]any{"content": "back", "target": "*"})
	for _, c := range []*servertest.Client{a, b} {
		if p := c.WaitPush("onChat"); p.Body["msg"] != "back" {
			t.Fatalf("onChat = %v", p.Body)
		}
	}
}
