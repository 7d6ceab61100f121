package driver_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

const latencyScenario = `
name: latency-truth
clients: 40
rooms: {count: 4}
payload: 32
phases:
  - {kind: enter, arrival_rate: 2000}
  - {kind: chat, duration: 2500ms, rate: 2}
  - {kind: leave, arrival_rate: 4000}
`

// TestLatencyTruth drives the real server through a relay that delays every
// server-to-client frame by a known 20 ms: the reported delivery p50 must be
// the undelayed p50 (measured just before, through the same relay) plus that
// delay, within a small margin; and a one-off 500 ms stall of the relay must
// show in the tail (p99.9, max) instead of vanishing.
func TestLatencyTruth(t *testing.T) {
	const delay = 20 * time.Millisecond
	const stall = 500 * time.Millisecond
	srv := servertest.Start(t, server.Options{})
	conn := startRelay(t, srv.ConnectorAddrs[0], 0)
	gate := startRelay(t, srv.GateAddr, 0)
	gate.rewritePort(srv.ConnectorAddrs[0], conn.addr)
	us := func(x time.Duration) int64 { return int64(x / time.Microsecond) }

	var base int64 // p50 without the delay, us
	tests := []struct {
		name  string
		delay time.Duration
		stall bool
	}{
		{"baseline", 0, false},
		{"delay", delay, false},
		{"delay+stall", delay, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Parse("latency-truth.yaml", []byte(latencyScenario))
			if err != nil {
				t.Fatal(err)
			}
			conn.setDelay(tc.delay)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.stall {
				// stall once, in the middle of the chat phase
				start := conn.frames()
				go func() {
					deadline := time.Now().Add(20 * time.Second)
					for time.Now().Before(deadline) {
						if conn.frames()-start > 400 {
							conn.stall(stall)
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			res, err := driver.Run(ctx, driver.Options{Scenario: s, Target: gate.addr, DrainTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			d := res.Summary.Ops["delivery"]
			c := res.Summary.Counters
			t.Logf("delivery: n %d min %dus p50 %dus p99 %dus p99.9 %dus max %dus; lost %d",
				d.Count, d.MinUs, d.P50Us, d.P99Us, d.P999Us, d.MaxUs, c.Lost)
			if d.Count < 1000 || c.Lost != 0 || c.Delivered != c.Expected {
				t.Fatalf("delivered %d of %d expected (lost %d)", c.Delivered, c.Expected, c.Lost)
			}
			switch {
			case tc.delay == 0:
				base = d.P50Us
			case !tc.stall:
				if d.MinUs < us(delay) {
					t.Errorf("min delivery %dus is below the relay's delay %v: latency under-reported", d.MinUs, delay)
				}
				if lo, hi := base+us(delay)-us(2*time.Millisecond), base+us(delay)+us(8*time.Millisecond); d.P50Us < lo || d.P50Us > hi {
					t.Errorf("p50 delivery %dus, want the undelayed p50 %dus + the relay's %v within -2/+8ms", d.P50Us, base, delay)
				}
			default:
				if d.MinUs < us(delay) {
					t.Errorf("min delivery %dus is below the relay's delay %v", d.MinUs, delay)
				}
				if d.MaxUs < us(stall*9/10) {
					t.Errorf("max delivery %dus: the %v stall vanished", d.MaxUs, stall)
				}
				if d.P999Us < us(stall/4) {
					t.Errorf("p99.9 delivery %dus: the %v stall does not show in the tail", d.P999Us, stall)
				}
			}
		})
	}
}
