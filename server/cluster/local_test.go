package cluster

import (
	"context"
	"log/slog"
	"os"
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
