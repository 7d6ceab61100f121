package calibrate

import (
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// TestRate: a storm phase compares over its active window (its wall time
// is the declared duration), chat and hop over wall time; no phase window:
// the summary's deliveries_per_s.
func TestRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	phase := func(kind string, wall time.Duration, delivered int64, active float64) metrics.PhaseStats {
		p := metrics.PhaseStats{Kind: kind, Start: t0, End: t0.Add(wall), Delivered: delivered, ActiveS: active}
		if active > 0 {
			p.ActiveDeliveriesPerSec = float64(delivered) / active
		}
		return p
	}
	tests := []struct {
		name string
		sum  metrics.Summary
		want float64
	}{
		{"storm over its active window", metrics.Summary{DeliveriesPerSec: 50, Phases: []metrics.PhaseStats{
			phase("enter", time.Second, 0, 0), phase("storm", 10*time.Second, 1000, 2)}}, 500},
		{"storm without a window: wall time", metrics.Summary{Phases: []metrics.PhaseStats{phase("storm", 10*time.Second, 1000, 0)}}, 100},
		{"chat over wall time", metrics.Summary{Phases: []metrics.PhaseStats{phase("chat", 4*time.Second, 1000, 3.9)}}, 250},
		{"no phases", metrics.Summary{DeliveriesPerSec: 42}, 42},
	}
	for _, tc := range tests {
		if got := Rate(&tc.sum); got != tc.want {
			t.Errorf("%s: Rate = %v, want %v", tc.name, got, tc.want)
		}
	}
	r := &Record{DeliveriesPerSec: 1000}
	sum := tests[0].sum
	if c := r.Ceiling(&sum); c.Ratio != 0.5 {
		t.Errorf("ceiling ratio %v, want 0.5 (active 500/s of 1000/s)", c.Ratio)
	}
}
