package soak

import (
	"context"
	"testing"
	"time"

	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

// TestRunAgainstServer churns clients against a real server for a few
// seconds: every step of a session runs, the samples cover the three phases,
// and the test process's own gauges come back (the server runs in it).
func TestRunAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a short soak")
	}
	s := servertest.Start(t, server.Options{})
	res, err := Run(context.Background(), Options{
		Gate: s.GateAddr, Metrics: []string{"http://" + s.HTTPAddr + "/metrics"},
		Duration: 3 * time.Second, Clients: 10, Rooms: 3, Chats: 2, Hops: 1, ChatInterval: 50 * time.Millisecond,
		Sample: 500 * time.Millisecond, Settle: 20 * time.Second,
		// The race detector's own memory makes RSS meaningless here.
		Margins: Margins{RSSBytes: 1 << 40, Goroutines: 20, FDs: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := res.Load
	if l.Connections < 10 || l.Hops == 0 || l.Chats == 0 || l.Pushes == 0 || l.Errors != 0 {
		t.Fatalf("load = %+v, want every client to connect, hop, chat and receive, without errors", l)
	}
	phases := map[string]int{}
	for _, s := range res.Samples {
		phases[s.Phase]++
	}
	if phases[PhaseBefore] < 2 || phases[PhaseLoad] < 3 || phases[PhaseAfter] < 1 {
		t.Fatalf("samples per phase = %v", phases)
	}
	if !res.Passed() {
		t.Fatalf("soak failed: %q", res.Failures)
	}
	png := t.TempDir() + "/soak.png"
	if err := res.WritePNG(png, "test"); err != nil {
		t.Fatal(err)
	}
}
