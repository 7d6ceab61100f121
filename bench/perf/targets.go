// Package perf holds the performance targets of chatbench as a data table,
// the judging of measured runs against them (pure functions, tested), and
// the runner that measures them with `chatbench bench` child processes
// (make perf). A target not met makes the table fail.
package perf

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/reports"
)

// Limits are the targets' numbers. Default is the table make perf judges.
type Limits struct {
	StormRatio float64 // single-process storm / calibrated ceiling, at least
	SplitRatio float64 // split 2x2 / single on the same scenario, at least
	// LatencyRatio: our p99 at LatencyRate over the bare calibration
	// server's on the same shape, measured interleaved, at most.
	LatencyRatio float64
	LatencyRate  float64 // deliveries/s of the latency scenario (nominal 100k)
	// RateFloor: a run must deliver at least this share of its offered rate.
	RateFloor float64
	// P99 and P99RateShare: our p99 at most P99 at P99RateShare of the
	// highest rate at which the bare server holds P99.
	P99          time.Duration
	P99RateShare float64
	IdleBytes    int64 // driver bytes per idle client at IdleClients, at most
	IdleClients  int
	MaxClients   int // clients in one driver process, at least
}

// Default are the targets.
var Default = Limits{
	StormRatio: 0.70, SplitRatio: 0.50,
	LatencyRatio: 1.10, LatencyRate: 100_000, RateFloor: 0.90,
	P99: 25 * time.Millisecond, P99RateShare: 0.90,
	IdleBytes: 10 << 10, IdleClients: 10_000, MaxClients: 19_000,
}

// Row is one line of the target table.
type Row struct {
	Key      string // the target's key (--only)
	Name     string
	Measured string
	Ratio    string
	Target   string
	Met      bool
	// Note qualifies Met ("no ceiling", "driver-bound reference: measure
	// again"); empty when there is nothing to add.
	Note string
}

// MetText is the table's "met" column.
func (r Row) MetText() string {
	s := "NO"
	if r.Met {
		s = "yes"
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// AllMet reports whether every row met its target (and there is a row).
func AllMet(rows []Row) bool {
	for _, r := range rows {
		if !r.Met {
			return false
		}
	}
	return len(rows) > 0
}

// A driver-bound run measured the driver as much as the server: its
// deliveries/s is a lower bound of the server's. So a driver-bound run can
// still meet an at-least target as the numerator of a ratio (the true ratio
// is higher), never as the denominator, and the row says so either way.
const (
	boundLower = "; driver-bound: a lower bound"
	BoundRerun = "driver-bound single run as the reference: measure again"
)

// StormRow judges a single-process storm against this machine's ceiling.
func (l Limits) StormRow(name string, sum *metrics.Summary) Row {
	row := Row{Key: "storm", Name: "single " + name + " vs ceiling", Target: fmt.Sprintf(">= %.2f, 0 lost", l.StormRatio)}
	row.Measured = fmt.Sprintf("%s/s, lost %d", Count(calibrate.Rate(sum)), sum.Counters.Lost)
	c := sum.Ceiling
	if c == nil {
		row.Ratio, row.Note = "-", "no ceiling"
		return row
	}
	row.Measured += fmt.Sprintf(" (ceiling %s/s)", Count(c.DeliveriesPerSec))
	if sum.Driver.DriverBound {
		row.Measured += boundLower
	}
	row.Ratio = fmt.Sprintf("%.2f", c.Ratio)
	row.Met = c.Ratio >= l.StormRatio && sum.Counters.Lost == 0
	return row
}

// SplitRow judges a split-topology storm against the single-process one.
func (l Limits) SplitRow(name string, split, single *metrics.Summary) Row {
	row := Row{Key: "split", Name: "split 2x2 " + name + " vs single", Target: fmt.Sprintf(">= %.2f", l.SplitRatio)}
	r := calibrate.Rate(split) / calibrate.Rate(single)
	row.Measured = fmt.Sprintf("%s/s vs %s/s, lost %d", Count(calibrate.Rate(split)), Count(calibrate.Rate(single)), split.Counters.Lost)
	if split.Driver.DriverBound {
		row.Measured += "; split run driver-bound: a lower bound"
	}
	row.Ratio = fmt.Sprintf("%.2f", r)
	row.Met = r >= l.SplitRatio
	if single.Driver.DriverBound {
		row.Measured += "; single run driver-bound"
		row.Met, row.Note = false, BoundRerun
	}
	return row
}

// Median is the run with the median delivery p99 (of an even count, the
// higher of the two middle runs), and the lowest and highest p99.
func Median(sums []*metrics.Summary) (median *metrics.Summary, lo, hi int64) {
	by := slices.Clone(sums)
	slices.SortStableFunc(by, func(a, b *metrics.Summary) int {
		return cmp.Compare(a.Ops["delivery"].P99Us, b.Ops["delivery"].P99Us)
	})
	return by[len(by)/2], by[0].Ops["delivery"].P99Us, by[len(by)-1].Ops["delivery"].P99Us
}

// clean checks runs for the latency rows: none driver-bound, none lossy,
// each at RateFloor of its offered rate or more; the problems, if any.
func (l Limits) clean(sums []*metrics.Summary, rate float64, who string) []string {
	var bad []string
	bound, lossy, slow := 0, 0, 0
	for _, s := range sums {
		if s.Driver.DriverBound {
			bound++
		}
		if s.Counters.Lost > 0 {
			lossy++
		}
		if s.DeliveriesPerSec < l.RateFloor*rate {
			slow++
		}
	}
	n := len(sums)
	if bound > 0 {
		bad = append(bad, fmt.Sprintf("%s DRIVER-BOUND (%d of %d runs)", who, bound, n))
	}
	if lossy > 0 {
		bad = append(bad, fmt.Sprintf("%s lost deliveries (%d of %d runs)", who, lossy, n))
	}
	if slow > 0 {
		bad = append(bad, fmt.Sprintf("%s below %.0f%% of %s/s (%d of %d runs)", who, 100*l.RateFloor, Count(rate), slow, n))
	}
	return bad
}

// LatencyRatioRow judges our p99 at LatencyRate against the bare server's
// on the same shape, the runs interleaved: the median run of each, ours at
// most LatencyRatio times the bare one's. Any driver-bound, lossy or slow
// run fails it.
func (l Limits) LatencyRatioRow(ours, bare []*metrics.Summary) Row {
	row := Row{Key: "latency", Name: fmt.Sprintf("p99 at %s deliveries/s vs bare server", Count(l.LatencyRate)),
		Target: fmt.Sprintf("<= %.2fx bare, 0 lost, >= %s/s", l.LatencyRatio, Count(l.RateFloor*l.LatencyRate))}
	if len(ours) == 0 || len(bare) == 0 {
		row.Measured, row.Ratio = "not measured", "-"
		return row
	}
	om, olo, ohi := Median(ours)
	bm, blo, bhi := Median(bare)
	op, bp := om.Ops["delivery"].P99Us, bm.Ops["delivery"].P99Us
	row.Measured = fmt.Sprintf("ours p99 %s (%s to %s) at %s/s, bare %s (%s to %s); median of %d interleaved runs each",
		USText(op), USText(olo), USText(ohi), Count(om.DeliveriesPerSec), USText(bp), USText(blo), USText(bhi), len(ours))
	bad := append(l.clean(ours, l.LatencyRate, "ours"), l.clean(bare, l.LatencyRate, "bare")...)
	if len(bad) > 0 {
		row.Measured += "; " + strings.Join(bad, "; ")
	}
	if bp <= 0 {
		row.Ratio = "-"
		return row
	}
	r := float64(op) / float64(bp)
	row.Ratio = fmt.Sprintf("%.2f", r)
	row.Met = r <= l.LatencyRatio && len(bad) == 0
	return row
}

// Step is one run of the search for the bare server's highest rate within P99.
type Step struct {
	Rate float64 // offered deliveries/s
	Sum  *metrics.Summary
}

// Holds reports whether a run held p99 within limit cleanly: not
// driver-bound, nothing lost, at RateFloor of its rate or more.
func (l Limits) Holds(st Step) bool {
	s := st.Sum
	return s != nil && !s.Driver.DriverBound && s.Counters.Lost == 0 && s.DeliveriesPerSec >= l.RateFloor*st.Rate &&
		time.Duration(s.Ops["delivery"].P99Us)*time.Microsecond <= l.P99
}

// HighestHeld is the highest rate of the steps that held P99 (0: none).
func (l Limits) HighestHeld(steps []Step) float64 {
	best := 0.0
	for _, st := range steps {
		if l.Holds(st) {
			best = max(best, st.Rate)
		}
	}
	return best
}

// SearchRow judges our p99 at P99RateShare of the highest rate at which the
// bare server held P99 (the search steps): our run at that share must hold
// P99 too, cleanly.
func (l Limits) SearchRow(steps []Step, ours *metrics.Summary, oursRate float64) Row {
	row := Row{Key: "search", Name: fmt.Sprintf("p99 at %.0f%% of the bare server's highest rate within %v", 100*l.P99RateShare, l.P99),
		Target: fmt.Sprintf("<= %v at >= %.2f of bare's rate, 0 lost", l.P99, l.P99RateShare)}
	var tried []string
	for _, st := range steps {
		mark := "over"
		if l.Holds(st) {
			mark = "held"
		}
		p99 := "-"
		if st.Sum != nil {
			p99 = USText(st.Sum.Ops["delivery"].P99Us)
		}
		tried = append(tried, fmt.Sprintf("%s/s %s %s", Count(st.Rate), p99, mark))
	}
	best := l.HighestHeld(steps)
	if best == 0 || ours == nil {
		row.Measured, row.Ratio = "bare server held "+l.P99.String()+" at no rate tried (bare: "+strings.Join(tried, ", ")+")", "-"
		return row
	}
	p99 := ours.Ops["delivery"].P99Us
	row.Measured = fmt.Sprintf("ours p99 %s at %s/s (bare held %v up to %s/s: %s)", USText(p99), Count(ours.DeliveriesPerSec), l.P99, Count(best), strings.Join(tried, ", "))
	bad := l.clean([]*metrics.Summary{ours}, oursRate, "ours")
	if len(bad) > 0 {
		row.Measured += "; " + strings.Join(bad, "; ")
	}
	row.Ratio = fmt.Sprintf("%.2f", float64(p99)/float64(l.P99/time.Microsecond))
	row.Met = oursRate >= l.P99RateShare*best*0.999 && len(bad) == 0 && time.Duration(p99)*time.Microsecond <= l.P99
	return row
}

// MemoryRow judges driver memory per idle client.
func (l Limits) MemoryRow(sum *metrics.Summary) Row {
	b := sum.Driver.MemoryPerClientB
	return Row{Key: "memory",
		Name:     fmt.Sprintf("driver bytes per idle client at %s", Count(float64(l.IdleClients))),
		Measured: fmt.Sprintf("%s B (%.1f KiB), errors %d", Count(float64(b)), float64(b)/1024, sum.Counters.Errors),
		Ratio:    fmt.Sprintf("%.2f", float64(b)/float64(l.IdleBytes)), Target: fmt.Sprintf("<= %d KiB", l.IdleBytes>>10),
		Met: b > 0 && b <= l.IdleBytes && sum.Counters.Errors == 0,
	}
}

// ClientsRow judges the clients one driver process holds.
func (l Limits) ClientsRow(sum *metrics.Summary) Row {
	peak := int64(0)
	for _, s := range sum.Series {
		peak = max(peak, s.Connected)
	}
	return Row{Key: "clients",
		Name:     "clients in one driver process",
		Measured: fmt.Sprintf("%s connected (2 source addresses), errors %d, %s B/client", Count(float64(peak)), sum.Counters.Errors, Count(float64(sum.Driver.MemoryPerClientB))),
		Ratio:    fmt.Sprintf("%.2f", float64(peak)/float64(l.MaxClients)), Target: fmt.Sprintf(">= %s, 0 errors", Count(float64(l.MaxClients))),
		Met: peak >= int64(l.MaxClients) && sum.Counters.Errors == 0,
	}
}

// BoundRow judges the shipped scenarios at their default sizes: never
// driver-bound. bound lists "name: why" of the driver-bound (or failed) runs.
func BoundRow(n int, bound []string) Row {
	row := Row{Key: "bound", Name: "driver-bound on shipped scenarios (default sizes)", Target: "never", Ratio: "-"}
	row.Measured = fmt.Sprintf("%d of %d runs driver-bound", len(bound), n)
	if len(bound) > 0 {
		row.Measured += ": " + strings.Join(bound, "; ")
	}
	row.Met = len(bound) == 0 && n > 0
	return row
}

// USText prints microseconds as us, ms or s.
func USText(us int64) string {
	switch {
	case us >= 1_000_000:
		return fmt.Sprintf("%.2f s", float64(us)/1e6)
	case us >= 1000:
		return fmt.Sprintf("%.1f ms", float64(us)/1e3)
	}
	return fmt.Sprintf("%d us", us)
}

// Count prints a number rounded, with thousands separators.
func Count(v float64) string { return reports.Count(int64(math.Round(v))) }
