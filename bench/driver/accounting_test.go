package driver_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

func parse(t *testing.T, yaml string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	return s
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnreachableTarget: a target that refuses connections fails the run
// fast with ErrUnreachable (it used to probe every room for the whole
// drain timeout and end "ok"), and the error rate stays <= 100%.
func TestUnreachableTarget(t *testing.T) {
	s := small(t, "chat", 200, 10, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := driver.Run(ctx, driver.Options{Scenario: s, Target: refusedAddr(t), DrainTimeout: 5 * time.Second})
	took := time.Since(start)
	if !errors.Is(err, driver.ErrUnreachable) {
		t.Fatalf("Run: %v, want ErrUnreachable", err)
	}
	if took > 4*time.Second {
		t.Errorf("took %v: want a fast failure (well under the 5s drain timeout)", took)
	}
	c := res.Summary.Counters
	if c.Errors == 0 || c.Errors > c.Requests || res.Summary.ErrorRate() > 1 {
		t.Errorf("errors %d of %d requests (rate %.2f): want 0 < errors <= requests", c.Errors, c.Requests, res.Summary.ErrorRate())
	}
}

// TestMisrouted runs the real server behind a relay that misroutes onChat
// pushes: private messages moved to another client (each one a loss the
// old count-only accounting hid), and room messages copied to a non-member
// (rooms of one). Misrouted deliveries are counted, are not delivered, and
// fail loss_max.
func TestMisrouted(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		misroute func(body []byte) (match, copy bool)
		lost     bool // misrouted deliveries are also losses
	}{
		{"private to the wrong member", `
name: misroute-private
clients: 20
rooms: {count: 2}
phases:
  - {kind: enter, arrival_rate: 2000}
  - {kind: chat, duration: 1s, rate: 2, private_share: 1}
  - {kind: leave, arrival_rate: 4000}
thresholds: {loss_max: 0}
`, func(b []byte) (bool, bool) { return !bytes.Contains(b, []byte(`"target":"*"`)), false }, true},
		{"room message to a non-member", `
name: misroute-room
clients: 10
rooms: {count: 10}
phases:
  - {kind: enter, arrival_rate: 2000}
  - {kind: chat, duration: 1s, rate: 2}
  - {kind: leave, arrival_rate: 4000}
thresholds: {loss_max: 0}
`, func(b []byte) (bool, bool) { return bytes.Contains(b, []byte(`"target":"*"`)), true }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := servertest.Start(t, server.Options{})
			conn := startRelay(t, srv.ConnectorAddrs[0], 0)
			conn.misroute = tc.misroute
			gate := startRelay(t, srv.GateAddr, 0)
			gate.rewritePort(srv.ConnectorAddrs[0], conn.addr)
			res := run(t, parse(t, tc.yaml), gate.addr)
			c := res.Summary.Counters
			t.Logf("sent %d expected %d delivered %d lost %d misrouted %d extra %d; relay rerouted %d frames",
				c.Sent, c.Expected, c.Delivered, c.Lost, c.Misrouted, c.Extra, conn.rerouted.Load())
			if conn.rerouted.Load() == 0 {
				t.Fatal("the relay misrouted nothing")
			}
			if c.Misrouted == 0 {
				t.Errorf("misrouted 0, want > 0")
			}
			if tc.lost && c.Lost < c.Misrouted {
				t.Errorf("lost %d < misrouted %d: each moved private message is a loss", c.Lost, c.Misrouted)
			}
			if !tc.lost && c.Lost != 0 {
				t.Errorf("lost %d, want 0 (copies only)", c.Lost)
			}
			if c.Delivered != c.Expected-c.Lost+c.Extra {
				t.Errorf("delivered %d, want expected %d - lost %d + extra %d (misrouted not delivered)", c.Delivered, c.Expected, c.Lost, c.Extra)
			}
			if n := res.Summary.Ops["delivery"].Count; n != c.Delivered {
				t.Errorf("delivery histogram %d samples, delivered %d", n, c.Delivered)
			}
			var rooms int64
			for _, r := range res.Rooms {
				rooms += r.Misrouted
			}
			if rooms != c.Misrouted {
				t.Errorf("rooms' misrouted %d, counter %d", rooms, c.Misrouted)
			}
			if len(res.Summary.Thresholds) != 1 || res.Summary.Thresholds[0].Pass {
				t.Errorf("thresholds %+v: want loss_max failed", res.Summary.Thresholds)
			}
		})
	}
}

// TestStormPhaseTimes: a storm phase lasts its declared duration (it used to
// end when its one burst drained: a near-zero phase and an absurd
// deliveries/s); deliveries_per_s is over that wall time, active_s and
// active_deliveries_per_s over first send to last delivery.
func TestStormPhaseTimes(t *testing.T) {
	const dur = 1500 * time.Millisecond
	srv := servertest.Start(t, server.Options{})
	s := parse(t, `
name: storm-times
clients: 40
rooms: {count: 2}
phases:
  - {kind: enter, arrival_rate: 2000}
  - {name: storm, kind: storm, duration: 1500ms, burst: 3}
  - {kind: leave, arrival_rate: 4000}
`)
	res := run(t, s, srv.GateAddr)
	var p *metrics.PhaseStats
	for i := range res.Summary.Phases {
		if res.Summary.Phases[i].Kind == "storm" {
			p = &res.Summary.Phases[i]
		}
	}
	if p == nil {
		t.Fatalf("no storm phase in %+v", res.Summary.Phases)
	}
	wall := p.End.Sub(p.Start)
	t.Logf("storm: wall %v delivered %d deliveries/s %.0f active %.3fs active deliveries/s %.0f",
		wall, p.Delivered, p.DeliveriesPerSec, p.ActiveS, p.ActiveDeliveriesPerSec)
	if want := int64(40 * 3 * 20); p.Delivered != want || res.Summary.Counters.Lost != 0 {
		t.Fatalf("delivered %d (lost %d), want %d", p.Delivered, res.Summary.Counters.Lost, want)
	}
	if wall < dur {
		t.Errorf("storm phase lasted %v, want at least its duration %v", wall, dur)
	}
	if got, want := p.DeliveriesPerSec, float64(p.Delivered)/wall.Seconds(); math.Abs(got-want) > 1e-6*want {
		t.Errorf("deliveries_per_s %.1f, want delivered / wall time = %.1f", got, want)
	}
	if p.ActiveS <= 0 || p.ActiveS > wall.Seconds() {
		t.Errorf("active_s %.4f, want in (0, %.3f]", p.ActiveS, wall.Seconds())
	}
	if p.ActiveS >= 0.010 {
		if got, want := p.ActiveDeliveriesPerSec, float64(p.Delivered)/p.ActiveS; math.Abs(got-want) > 1e-6*want {
			t.Errorf("active_deliveries_per_s %.1f, want delivered / active_s = %.1f", got, want)
		}
	} else if p.ActiveDeliveriesPerSec != 0 {
		t.Errorf("active window %.4fs under 10ms but active_deliveries_per_s %.0f", p.ActiveS, p.ActiveDeliveriesPerSec)
	}
	if p.DeliveriesPerSec > p.ActiveDeliveriesPerSec && p.ActiveDeliveriesPerSec > 0 {
		t.Errorf("deliveries_per_s %.0f over the wall time > %.0f over the active window", p.DeliveriesPerSec, p.ActiveDeliveriesPerSec)
	}
}
