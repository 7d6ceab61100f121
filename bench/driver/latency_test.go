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
// that delay (plus the server's own small latency), and a one-off 500 ms
// stall of the relay must show in the tail (p99.9, max) instead of vanishing.
func TestLatencyTruth(t *testing.T) {
	const delay = 20 * time.Millisecond
	const stall = 500 * time.Millisecond
	srv := servertest.Start(t, server.Options{})
	conn := startRelay(t, srv.ConnectorAddrs[0], delay)
	gate := startRelay(t, srv.GateAddr, 0)
	gate.rewritePort(srv.ConnectorAddrs[0], conn.addr)

	tests := []struct {
		name  string
		stall bool
	}{
		{"delay", false},
		{"delay+stall", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Parse("latency-truth.yaml", []byte(latencyScenario))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.stall {
				// stall once, in the middle of the chat phase
				base := conn.frames()
				go func() {
					deadline := time.Now().Add(20 * time.Second)
					for time.Now().Before(deadline) {
						if conn.frames()-base > 400 {
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
			us := func(x time.Duration) int64 { return int64(x / time.Microsecond) }
			if d.MinUs < us(delay) {
				t.Errorf("min delivery %dus is below the relay's delay %v: latency under-reported", d.MinUs, delay)
			}
			if d.P50Us < us(delay) || d.P50Us > us(delay+8*time.Millisecond) {
				t.Errorf("p50 delivery %dus, want the relay's %v within 8ms", d.P50Us, delay)
			}
			if tc.stall {
				if d.MaxUs < us(stall*9/10) {
					t.Errorf("max delivery %dus: the %v stall vanished", d.MaxUs, stall)
				}
				if d.P999Us < us(stall/4) {
					t.Errorf("p99.9 delivery %dus: the %v stall does not show in the tail", d.P999Us, stall)
				}
			} else if d.MaxUs > us(stall/2) {
				t.Logf("note: max %dus without a stall (machine busy?)", d.MaxUs)
			}
		})
	}
}
