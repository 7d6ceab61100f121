package perf

import (
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

func summary(rate float64, lost int64, bound bool, ceiling float64) *metrics.Summary {
	s := &metrics.Summary{DeliveriesPerSec: rate}
	s.Counters.Lost = lost
	s.Driver.DriverBound = bound
	if ceiling > 0 {
		s.Ceiling = &metrics.Ceiling{DeliveriesPerSec: ceiling, Ratio: rate / ceiling}
	}
	return s
}

func latency(p99Us int64, rate float64, lost int64, bound bool) *metrics.Summary {
	s := summary(rate, lost, bound, 0)
	s.Ops = map[string]metrics.OpStats{"delivery": {Count: 100, P50Us: p99Us / 3, P99Us: p99Us, P999Us: p99Us * 2}}
	return s
}

// A driver-bound run's deliveries/s is a lower bound of the server's: it may
// meet an at-least target as a numerator, never as the reference, and the
// row always says it was driver-bound.
func TestStormAndSplitRows(t *testing.T) {
	l := Default
	for _, tc := range []struct {
		name    string
		row     Row
		met     bool
		note    string
		mention string
	}{
		{"storm at the ceiling", l.StormRow("storm", summary(90, 0, false, 100)), true, "", ""},
		{"storm below 0.7", l.StormRow("storm", summary(60, 0, false, 100)), false, "", ""},
		{"storm with losses", l.StormRow("storm", summary(90, 3, false, 100)), false, "", ""},
		{"storm without ceiling", l.StormRow("storm", summary(90, 0, false, 0)), false, "no ceiling", ""},
		{"driver-bound storm that meets", l.StormRow("storm", summary(90, 0, true, 100)), true, "", "driver-bound: a lower bound"},
		{"split meets", l.SplitRow("storm", summary(60, 0, false, 0), summary(100, 0, false, 0)), true, "", ""},
		{"split misses", l.SplitRow("storm", summary(40, 0, false, 0), summary(100, 0, false, 0)), false, "", ""},
		{"driver-bound split that meets", l.SplitRow("storm", summary(60, 0, true, 0), summary(100, 0, false, 0)), true, "", "split run driver-bound"},
		{"driver-bound single reference", l.SplitRow("storm", summary(60, 0, false, 0), summary(100, 0, true, 0)), false, BoundRerun, "single run driver-bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.row.Met != tc.met || tc.row.Note != tc.note {
				t.Errorf("met %v note %q, want %v %q (measured %q)", tc.row.Met, tc.row.Note, tc.met, tc.note, tc.row.Measured)
			}
			if has := strings.Contains(tc.row.Measured, "driver-bound"); has != (tc.mention != "") || !strings.Contains(tc.row.Measured, tc.mention) {
				t.Errorf("measured %q, want it to say %q", tc.row.Measured, tc.mention)
			}
		})
	}
}

// The latency ratio judges the median run of ours against the median run of
// the bare server, and fails on any driver-bound, slow or lossy run of either.
func TestLatencyRatioRow(t *testing.T) {
	l := Default
	ok := func(p99 int64) *metrics.Summary { return latency(p99, 99_000, 0, false) }
	three := func(a, b, c int64) []*metrics.Summary { return []*metrics.Summary{ok(a), ok(b), ok(c)} }
	for _, tc := range []struct {
		name       string
		ours, bare []*metrics.Summary
		met        bool
		ratio      string
		mention    string
	}{
		{"equal", three(50_000, 60_000, 55_000), three(55_000, 57_000, 50_000), true, "1.00", "median of 3 interleaved runs each"},
		{"at 1.1x", three(62_700, 60_000, 70_000), three(57_000, 57_000, 57_000), true, "1.10", "ours p99 62.7 ms (60.0 ms to 70.0 ms)"},
		{"over 1.1x", three(63_000, 64_000, 70_000), three(57_000, 57_000, 57_000), false, "1.12", ""},
		{"an outlier of ours does not count", three(200_000, 50_000, 55_000), three(57_000, 57_000, 57_000), true, "0.96", ""},
		{"a driver-bound run of ours", []*metrics.Summary{latency(50_000, 99_000, 0, true), ok(50_000), ok(50_000)}, three(57_000, 57_000, 57_000), false, "0.88", "ours DRIVER-BOUND (1 of 3 runs)"},
		{"a slow bare run", three(50_000, 50_000, 50_000), []*metrics.Summary{latency(57_000, 80_000, 0, false), ok(57_000), ok(57_000)}, false, "0.88", "bare below 90% of 100,000/s (1 of 3 runs)"},
		{"a lossy run", []*metrics.Summary{latency(50_000, 99_000, 4, false), ok(50_000), ok(50_000)}, three(57_000, 57_000, 57_000), false, "0.88", "ours lost deliveries"},
		{"nothing measured", nil, nil, false, "-", "not measured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := l.LatencyRatioRow(tc.ours, tc.bare)
			if row.Met != tc.met || row.Ratio != tc.ratio {
				t.Errorf("met %v ratio %s, want %v %s (measured %q)", row.Met, row.Ratio, tc.met, tc.ratio, row.Measured)
			}
			if !strings.Contains(row.Measured, tc.mention) {
				t.Errorf("measured %q, want it to say %q", row.Measured, tc.mention)
			}
		})
	}
}

// The search row: ours must hold 25 ms at 0.9 of the highest rate at which
// the bare server held it.
func TestSearchRow(t *testing.T) {
	l := Default
	steps := []Step{
		{Rate: 100_000, Sum: latency(57_000, 99_000, 0, false)},
		{Rate: 25_000, Sum: latency(9_000, 25_000, 0, false)},
		{Rate: 62_500, Sum: latency(30_000, 62_000, 0, false)},
		{Rate: 43_750, Sum: latency(20_000, 43_700, 0, false)},
		{Rate: 53_125, Sum: latency(24_000, 40_000, 0, false)}, // within 25 ms but below 90% of its rate
	}
	if got := l.HighestHeld(steps); got != 43_750 {
		t.Fatalf("highest held %v, want 43750", got)
	}
	rate := 0.9 * 43_750
	for _, tc := range []struct {
		name    string
		ours    *metrics.Summary
		rate    float64
		met     bool
		mention string
	}{
		{"ours holds", latency(24_000, rate, 0, false), rate, true, "bare held 25ms up to 43,750/s"},
		{"ours over 25 ms", latency(26_000, rate, 0, false), rate, false, "ours p99 26.0 ms"},
		{"ours below its rate", latency(20_000, 0.8*rate, 0, false), rate, false, "ours below 90%"},
		{"ours at too low a share", latency(20_000, 0.5*43_750, 0, false), 0.5 * 43_750, false, ""},
		{"ours driver-bound", latency(20_000, rate, 0, true), rate, false, "DRIVER-BOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := l.SearchRow(steps, tc.ours, tc.rate)
			if row.Met != tc.met || !strings.Contains(row.Measured, tc.mention) {
				t.Errorf("met %v, want %v; measured %q, want it to say %q", row.Met, tc.met, row.Measured, tc.mention)
			}
		})
	}
	if row := l.SearchRow(steps[:1], nil, 0); row.Met || !strings.Contains(row.Measured, "at no rate tried") {
		t.Errorf("no held rate: %+v", row)
	}
}

func TestMemoryClientsBoundRows(t *testing.T) {
	l := Default
	mem := func(b, errs int64) *metrics.Summary {
		s := &metrics.Summary{}
		s.Driver.MemoryPerClientB, s.Counters.Errors = b, errs
		return s
	}
	conn := func(peak int64, errs int64) *metrics.Summary {
		s := &metrics.Summary{Series: []metrics.Second{{Connected: peak / 2}, {Connected: peak}, {Connected: 0}}}
		s.Counters.Errors = errs
		return s
	}
	for _, tc := range []struct {
		name string
		row  Row
		met  bool
	}{
		{"memory within", l.MemoryRow(mem(10<<10, 0)), true},
		{"memory over", l.MemoryRow(mem(10<<10+1, 0)), false},
		{"memory unknown", l.MemoryRow(mem(0, 0)), false},
		{"memory with errors", l.MemoryRow(mem(9000, 1)), false},
		{"clients reached", l.ClientsRow(conn(19_000, 0)), true},
		{"clients short", l.ClientsRow(conn(18_999, 0)), false},
		{"clients with errors", l.ClientsRow(conn(19_000, 2)), false},
		{"bound never", BoundRow(7, nil), true},
		{"bound once", BoundRow(7, []string{"chat: cpu"}), false},
		{"bound nothing ran", BoundRow(0, nil), false},
	} {
		if tc.row.Met != tc.met {
			t.Errorf("%s: met %v, want %v (%+v)", tc.name, tc.row.Met, tc.met, tc.row)
		}
	}
}

func TestAllMetAndTable(t *testing.T) {
	rows := []Row{{Name: "a", Measured: "1", Ratio: "1.00", Target: ">= 1", Met: true}, {Name: "b", Measured: "2", Ratio: "-", Target: "never", Note: BoundRerun}}
	if AllMet(rows) || !AllMet(rows[:1]) || AllMet(nil) {
		t.Fatalf("AllMet wrong")
	}
	var b strings.Builder
	if err := Table(&b, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "NO ("+BoundRerun+")") || !strings.Contains(b.String(), "yes") {
		t.Fatalf("table:\n%s", b.String())
	}
	if err := CheckOnly([]string{"storm", "latency"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckOnly([]string{"lateny"}); err == nil || !strings.Contains(err.Error(), "storm,split,latency") {
		t.Fatalf("CheckOnly: %v", err)
	}
}
