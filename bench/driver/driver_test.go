package driver_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/cluster"
	"github.com/chatbench/chatbench/server/servertest"
)

// small loads a shipped scenario and shrinks it for a test.
func small(t *testing.T, name string, clients, rooms int, dur time.Duration) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if err := s.Apply(scenario.Overrides{Clients: clients, Rooms: rooms, Duration: dur}); err != nil {
		t.Fatalf("shrink %s: %v", name, err)
	}
	return s
}

func run(t *testing.T, s *scenario.Scenario, gate string) *driver.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := driver.Run(ctx, driver.Options{Scenario: s, Target: gate, Topology: "single",
		Out: t.TempDir(), DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("run %s: %v", s.Name, err)
	}
	return res
}

// TestShippedScenarios runs every shipped scenario end to end, small, against
// the real reference server, and checks the accounting: nothing lost,
// duplicated or out of order, every expected delivery delivered, no errors.
func TestShippedScenarios(t *testing.T) {
	srv := servertest.Start(t, server.Options{})
	for _, name := range scenario.Names() {
		t.Run(name, func(t *testing.T) { checkScenario(t, name, srv.GateAddr) })
	}
}

// TestSplitTopology runs the combined and the hop scenarios against a split
// cluster (2 connectors x 2 chat shards over embedded NATS, in process).
func TestSplitTopology(t *testing.T) {
	topo := cluster.Generate(cluster.GenerateOptions{Connectors: 2, Shards: 2, GatePort: -1, ConnectorPort: -1, HTTPPort: -1})
	l, err := cluster.StartLocal(cluster.NodeOptions{Topology: &topo, Logger: slog.New(slog.DiscardHandler)})
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
	for _, name := range []string{"all", "hop"} {
		t.Run(name, func(t *testing.T) { checkScenario(t, name, l.Gate.ClientAddr) })
	}
}

func checkScenario(t *testing.T, name, gate string) {
	t.Helper()
	s := small(t, name, 60, 3, 1500*time.Millisecond)
	res := run(t, s, gate)
	sum := res.Summary
	c := sum.Counters
	t.Logf("%s: sent %d expected %d delivered %d extra %d misrouted %d lost %d dup %d ooo %d late %d errors %d %v; driver %+v",
		name, c.Sent, c.Expected, c.Delivered, c.Extra, c.Misrouted, c.Lost, c.Duplicated, c.OutOfOrder, c.LateSends, c.Errors, c.ErrorsByKind, sum.Driver)
	if c.Lost != 0 || c.Duplicated != 0 || c.OutOfOrder != 0 || c.Misrouted != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, misrouted %d: want 0", c.Lost, c.Duplicated, c.OutOfOrder, c.Misrouted)
	}
	if c.Errors != 0 {
		t.Errorf("errors %d (%v by kind, %v by code): want 0", c.Errors, c.ErrorsByKind, c.ErrorsByCode)
	}
	sends := false
	for _, p := range s.Phases {
		sends = sends || p.Kind.Sends()
	}
	if sends && c.Sent == 0 {
		t.Errorf("no message sent")
	}
	var extra int64
	for _, r := range res.Rooms {
		extra += r.Extra
		if r.Lost != 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Ghosts != 0 || r.LeaveMiss != 0 || r.Misrouted != 0 || r.AddMiss != 0 {
			t.Errorf("room %s: %+v", r.Room, r)
		}
	}
	if c.Delivered != c.Expected+extra || c.Extra != extra {
		t.Errorf("delivered %d, want expected %d + in-transit extra %d (counter extra %d)", c.Delivered, c.Expected, extra, c.Extra)
	}
	if sends && sum.Ops["delivery"].Count != c.Delivered {
		t.Errorf("delivery histogram has %d samples, delivered %d", sum.Ops["delivery"].Count, c.Delivered)
	}
	if res.Dir == "" {
		t.Errorf("no results directory")
	} else if _, err := metrics.ReadSummary(res.Dir); err != nil {
		t.Errorf("read back summary: %v", err)
	}
}
