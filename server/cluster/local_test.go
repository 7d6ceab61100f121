package cluster

import (
	"context"
	"fmt"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/internal/testwait"
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

// TestBusReconnect: when NATS goes away for longer than the shard waits
// for a silent connector (so the shard evicts both connectors and loses
// every member), the sessions stay connected; requests meanwhile answer 504
// at once; once NATS is back the connectors send their membership, the shard
// restores it, and the room works with the right members: those still
// connected, not the one that left during the outage.
func TestBusReconnect(t *testing.T) {
	ns, err := StartNATS("127.0.0.1", -1, "")
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
	topo := Generate(GenerateOptions{Connectors: 2, Shards: 1, GatePort: -1, ConnectorPort: -1, HTTPPort: -1})
	// A short ConnTimeout: the shard evicts a connector silent for 4 x 100ms.
	l, err := StartLocal(NodeOptions{Topology: &topo, NATS: []string{url}, Logger: testLogger(),
		Bus: BusOptions{RequestTimeout: servertest.Timeout, ConnTimeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	names := []string{usersOn("u", 0, 2, 1)[0], usersOn("u", 1, 2, 1)[0], usersOn("w", 0, 2, 1)[0]}
	cs := make([]*servertest.Client, 3)
	for i, n := range names {
		cs[i], _ = servertest.Enter(t, l.Gate.ClientAddr, n, "r")
	}
	shard := l.Shards[0].Shard
	evicted := shard.Evicted.Load()

	ns.Shutdown()
	ns.WaitForShutdown()
	start := time.Now()
	r := cs[0].Request("chat.chatHandler.send", map[string]any{"content": "in the dark", "target": "*"})
	if took := time.Since(start); r["code"] != float64(504) || took > time.Second {
		t.Fatalf("send during the outage = %v after %v, want 504 within 1s", r, took)
	}
	cs[2].Close() // leaves during the outage: its leave cannot reach the shard yet
	// Wait until the shard has evicted both connectors (their members are gone there).
	testwait.Until(t, servertest.Timeout, func() error {
		if n := shard.Evicted.Load() - evicted; n < 2 {
			return fmt.Errorf("shard evicted %d connectors during the outage, want 2", n)
		}
		return nil
	})
	if ns2, err = StartNATS("127.0.0.1", portOf(strings.TrimPrefix(url, "nats://")), ""); err != nil {
		t.Fatal(err)
	}
	// The members are restored: poll until the shard's room holds exactly
	// the two still connected.
	want := []string{names[0], names[1]}
	testwait.Until(t, servertest.Timeout, func() error {
		got := shard.Rooms().Registry.Members("r")
		if len(got) == 2 && (got[0] == want[0] && got[1] == want[1] || got[0] == want[1] && got[1] == want[0]) {
			return nil
		}
		return fmt.Errorf("shard's room after the outage = %v, want %v", got, want)
	})
	for i := range 2 {
		cs[i].Request("chat.chatHandler.send", map[string]any{"content": "back", "target": "*"})
		for _, c := range cs[:2] {
			if p := c.WaitPush("onChat"); p.Body["msg"] != "back" {
				t.Fatalf("onChat = %v", p.Body)
			}
		}
	}
	if shard.Synced.Load() < 2 {
		t.Errorf("shard restored %d members, want the 2 it had lost", shard.Synced.Load())
	}
}
