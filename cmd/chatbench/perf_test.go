package main

import (
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

func perfSummary(rate float64, lost int64, bound bool, ceiling float64) *metrics.Summary {
	s := &metrics.Summary{DeliveriesPerSec: rate}
	s.Counters.Lost = lost
	s.Driver.DriverBound = bound
	if ceiling > 0 {
		s.Ceiling = &metrics.Ceiling{DeliveriesPerSec: ceiling, Ratio: rate / ceiling}
	}
	return s
}

// A driver-bound run's deliveries/s is a lower bound of the server's: it may
// meet an at-least target as a numerator, never as the reference, and the
// row always says it was driver-bound.
func TestPerfRowsJudgeDriverBoundRuns(t *testing.T) {
	for _, tc := range []struct {
		name         string
		row          perfRow
		met, mention string
	}{
		{"storm at the ceiling", stormRow("storm", perfSummary(90, 0, false, 100)), "yes", ""},
		{"storm below 0.7", stormRow("storm", perfSummary(60, 0, false, 100)), "NO", ""},
		{"storm with losses", stormRow("storm", perfSummary(90, 3, false, 100)), "NO", ""},
		{"storm without ceiling", stormRow("storm", perfSummary(90, 0, false, 0)), "NO (no ceiling)", ""},
		{"driver-bound storm that meets", stormRow("storm", perfSummary(90, 0, true, 100)), "yes", "driver-bound: a lower bound"},
		{"split meets", splitRow("storm", perfSummary(60, 0, false, 0), perfSummary(100, 0, false, 0)), "yes", ""},
		{"split misses", splitRow("storm", perfSummary(40, 0, false, 0), perfSummary(100, 0, false, 0)), "NO", ""},
		{"driver-bound split that meets", splitRow("storm", perfSummary(60, 0, true, 0), perfSummary(100, 0, false, 0)), "yes", "split run driver-bound"},
		{"driver-bound single reference", splitRow("storm", perfSummary(60, 0, false, 0), perfSummary(100, 0, true, 0)), boundRerun, "single run driver-bound"},
	} {
		if tc.row.met != tc.met {
			t.Errorf("%s: met %q, want %q (measured %q)", tc.name, tc.row.met, tc.met, tc.row.measured)
		}
		if has := strings.Contains(tc.row.measured, "driver-bound"); has != (tc.mention != "") || !strings.Contains(tc.row.measured, tc.mention) {
			t.Errorf("%s: measured %q, want it to say %q", tc.name, tc.row.measured, tc.mention)
		}
	}
}

func latencySummary(p99Us int64, rate float64, lost int64, bound bool) *metrics.Summary {
	s := perfSummary(rate, lost, bound, 0)
	s.Ops = map[string]metrics.OpStats{"delivery": {P50Us: p99Us / 3, P99Us: p99Us, P999Us: p99Us * 2}}
	return s
}

// The latency row judges the run with the median p99 and fails on any
// driver-bound, slow or lossy run.
func TestLatencyRowTakesTheMedianRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sums     []*metrics.Summary
		met      string
		medianUs int64
		mention  string
	}{
		{"one run within", []*metrics.Summary{latencySummary(20_000, 99_000, 0, false)}, "yes", 20_000, ""},
		{"median within, one outlier", []*metrics.Summary{latencySummary(90_000, 99_000, 0, false), latencySummary(20_000, 99_000, 0, false), latencySummary(22_000, 99_000, 0, false)}, "yes", 22_000, "median of 3 runs, p99 20.0 ms to 90.0 ms"},
		{"median over", []*metrics.Summary{latencySummary(90_000, 99_000, 0, false), latencySummary(20_000, 99_000, 0, false), latencySummary(96_000, 99_000, 0, false)}, "NO", 90_000, "median of 3 runs"},
		{"even count takes the higher middle run", []*metrics.Summary{latencySummary(20_000, 99_000, 0, false), latencySummary(30_000, 99_000, 0, false)}, "NO", 30_000, "median of 2 runs"},
		{"a driver-bound run", []*metrics.Summary{latencySummary(20_000, 99_000, 0, true), latencySummary(21_000, 99_000, 0, false), latencySummary(22_000, 99_000, 0, false)}, "NO", 21_000, "DRIVER-BOUND (1 of 3 runs)"},
		{"a run below the rate", []*metrics.Summary{latencySummary(20_000, 80_000, 0, false), latencySummary(21_000, 99_000, 0, false), latencySummary(22_000, 99_000, 0, false)}, "NO", 21_000, ""},
		{"a lossy run", []*metrics.Summary{latencySummary(20_000, 99_000, 0, false), latencySummary(21_000, 99_000, 5, false), latencySummary(22_000, 99_000, 0, false)}, "NO", 21_000, ""},
	} {
		row, median := latencyRow(tc.sums)
		if row.met != tc.met {
			t.Errorf("%s: met %q, want %q (measured %q)", tc.name, row.met, tc.met, row.measured)
		}
		if got := median.Ops["delivery"].P99Us; got != tc.medianUs {
			t.Errorf("%s: judged the run with p99 %d us, want %d", tc.name, got, tc.medianUs)
		}
		if !strings.Contains(row.measured, tc.mention) {
			t.Errorf("%s: measured %q, want it to say %q", tc.name, row.measured, tc.mention)
		}
	}
}
