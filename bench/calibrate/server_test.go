package calibrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
)

func startBare(t *testing.T) *calibrate.Server {
	t.Helper()
	s, err := calibrate.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDriverAgainstBare runs every shipped scenario, small, against the bare
// server: it must speak enough pomelo for the driver to account for every
// message (the ceiling is only a ceiling if nothing is lost).
func TestDriverAgainstBare(t *testing.T) {
	srv := startBare(t)
	for _, name := range scenario.Names() {
		t.Run(name, func(t *testing.T) {
			s, err := scenario.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(scenario.Overrides{Clients: 60, Rooms: 3, Duration: 2 * time.Second}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			res, err := driver.Run(ctx, driver.Options{Scenario: s, Target: srv.Addr(), Topology: "calibrate", DrainTimeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("run %s: %v", name, err)
			}
			c := res.Summary.Counters
			if c.Lost != 0 || c.Duplicated != 0 || c.OutOfOrder != 0 || c.Errors != 0 {
				t.Errorf("%s: lost %d dup %d ooo %d errors %d %v %v", name, c.Lost, c.Duplicated, c.OutOfOrder, c.Errors, c.ErrorsByKind, c.ErrorsByOp)
			}
			if s.Phases[len(s.Phases)-1].Kind != scenario.KindIdle && c.Sent > 0 && c.Delivered == 0 {
				t.Errorf("%s: sent %d, nothing delivered", name, c.Sent)
			}
		})
	}
}
