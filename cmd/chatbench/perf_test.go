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
