package gate

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"golang.org/x/perf/benchmath"
)

// Verdict is the outcome of a gate or of one of its metrics.
type Verdict string

// The verdicts, best first.
const (
	Pass         Verdict = "pass"
	Inconclusive Verdict = "inconclusive"
	Regression   Verdict = "regression"
)

// Exit codes of chatbench gate for each verdict (2 is a usage error and 4
// a gate that could not run: neither may read as a verdict).
const (
	ExitPass         = 0
	ExitRegression   = 1
	ExitInconclusive = 3
	ExitError        = 4
)

// ExitCode is the process exit code of a verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case Pass:
		return ExitPass
	case Regression:
		return ExitRegression
	}
	return ExitInconclusive
}

// Metric says what the gate compares and how much change it lets through.
type Metric struct {
	Name string `json:"name"` // key in gate.json and on the plot
	Unit string `json:"unit"`
	// HigherIsBetter: deliveries/s; latencies are better lower.
	HigherIsBetter bool `json:"higher_is_better"`
	// Tolerance is the largest change for the worse that still passes
	// (0.10: 10% fewer deliveries/s, or a 10% higher latency). A pass
	// needs the whole confidence interval of the change within it; a
	// regression needs a significant change whose estimate is beyond it.
	Tolerance float64 `json:"tolerance"`
	// Guard: the metric can fail the gate (a regression) but need not show
	// equivalence for a pass: a wall-clock figure that a machine shared
	// with other work spreads too widely for its interval to fit a useful
	// tolerance. Its own verdict still says so (inconclusive).
	Guard bool `json:"guard,omitempty"`
}

// DefaultMetrics are the gate's metrics and their default tolerances.
//
// The server's CPU microseconds per delivery decide a pass: what a core
// buys, so 25% more of it is a server that delivers 20% less at capacity.
// On the gate scenario (the server under capacity, its write path fixed by
// --machine-load=saturated) runs of one version agree within a few percent
// even on a machine shared with other work, so 8 runs of each show a 10%
// change or its absence.
//
// The rest are guards: a significant change beyond their tolerance fails
// the gate, but a pass need not show they did not move. The user part of
// the CPU per delivery is the server's own code without the kernel's
// socket work: the most sensitive to a slower hot path, but a change may
// trade it for fewer writes, hence its wider tolerance. Deliveries/s and
// the delivery p50/p99 are wall-clock figures that a busy machine spreads
// by 20-100% between runs.
func DefaultMetrics() []Metric {
	return []Metric{
		{Name: "deliveries_per_s", Unit: "1/s", HigherIsBetter: true, Tolerance: 0.10, Guard: true},
		{Name: "delivery_p50_ms", Unit: "ms", Tolerance: 0.25, Guard: true},
		{Name: "delivery_p99_ms", Unit: "ms", Tolerance: 0.25, Guard: true},
		{Name: "server_cpu_us_per_delivery", Unit: "us", Tolerance: 0.10},
		{Name: "server_user_us_per_delivery", Unit: "us", Tolerance: 0.25, Guard: true},
	}
}

// Stats sets the statistics of the comparison.
type Stats struct {
	Alpha      float64 // significance level of the U test for a regression (default 0.01; CompareRuns splits it over the metrics)
	Confidence float64 // level of the medians' intervals (default 0.95)
	// Equivalence is the level of the interval of the change that a pass
	// needs within the tolerance (default 0.90: two one-sided tests at 5%).
	Equivalence float64
	MinRuns     int // measured runs each version needs (default 6: a finite 95% interval of a median)
}

func (s Stats) withDefaults() Stats {
	if s.Alpha == 0 {
		s.Alpha = 0.01
	}
	if s.Confidence == 0 {
		s.Confidence = 0.95
	}
	if s.Equivalence == 0 {
		s.Equivalence = 0.90
	}
	if s.MinRuns == 0 {
		s.MinRuns = 6
	}
	return s
}

// Summary is one version's sample of one metric.
type Summary struct {
	N      int       `json:"n"`
	Median Num       `json:"median"`
	Lo     Num       `json:"lo"` // confidence interval of the median (null: not finite)
	Hi     Num       `json:"hi"`
	Values []float64 `json:"values"` // every measured run, in run order
}

// Comparison is one metric compared between the versions.
type Comparison struct {
	Metric
	Baseline  Summary `json:"baseline"`
	Candidate Summary `json:"candidate"`
	// Ratio is the candidate's median over the baseline's.
	Ratio Num `json:"ratio"`
	// Worse is the change for the worse as a fraction (0.2: 20% fewer
	// deliveries/s, or 20% higher latency); negative for a change for the
	// better. It is the Hodges-Lehmann estimate of the shift between the
	// versions' log values (the median of every candidate/baseline ratio),
	// and WorseLo, WorseHi its interval at level Equivalence, from the
	// Mann-Whitney U distribution (null: too few runs to bound it).
	Worse       Num      `json:"worse"`
	WorseLo     Num      `json:"worse_lo"`
	WorseHi     Num      `json:"worse_hi"`
	P           Num      `json:"p"` // Mann-Whitney U test, two-sided (null: not tested)
	Alpha       float64  `json:"alpha"`
	Confidence  float64  `json:"confidence"`
	Equivalence float64  `json:"equivalence"`
	Verdict     Verdict  `json:"verdict"`
	Reason      string   `json:"reason"`
	Warnings    []string `json:"warnings,omitempty"`
}

// Compare judges one metric from the two versions' measured runs:
//   - fewer than MinRuns runs of either version: inconclusive;
//   - a significant change (U test, p < Alpha) whose whole interval (level
//     Equivalence) is worse than the tolerance: regression;
//   - the interval of the change (level Equivalence) within the tolerance,
//     i.e. the change is shown to be no worse than it: pass;
//   - otherwise inconclusive: the runs neither show a regression nor rule
//     one out (more runs, or a quieter machine, would tell).
func Compare(m Metric, base, cand []float64, st Stats) Comparison {
	st = st.withDefaults()
	c := Comparison{Metric: m, Alpha: st.Alpha, Confidence: st.Confidence, Equivalence: st.Equivalence,
		P: Num(math.NaN()), Worse: Num(math.NaN()), WorseLo: Num(math.NaN()), WorseHi: Num(math.NaN())}
	thr := benchmath.DefaultThresholds
	thr.CompareAlpha = st.Alpha
	a, b := benchmath.NewSample(slices.Clone(base), &thr), benchmath.NewSample(slices.Clone(cand), &thr)
	c.Baseline = summarize(base, a, st.Confidence, &c.Warnings)
	c.Candidate = summarize(cand, b, st.Confidence, &c.Warnings)
	c.Ratio = ratio(c.Baseline.Median, c.Candidate.Median)
	if len(base) < st.MinRuns || len(cand) < st.MinRuns {
		c.Verdict = Inconclusive
		c.Reason = fmt.Sprintf("too few measured runs: %d baseline, %d candidate, need %d each", len(base), len(cand), st.MinRuns)
		return c
	}
	if slices.Min(base) <= 0 || slices.Min(cand) <= 0 {
		c.Verdict = Inconclusive
		c.Reason = "a value is not positive: no ratio to compare"
		return c
	}
	cmp := benchmath.AssumeNothing.Compare(a, b)
	for _, w := range cmp.Warnings {
		c.Warnings = append(c.Warnings, w.Error())
	}
	c.P = Num(cmp.P)
	est, lo, hi := ShiftInterval(base, cand, st.Equivalence)
	c.Worse, c.WorseLo, c.WorseHi = worse(m, est), worse(m, lo), worse(m, hi)
	if m.HigherIsBetter { // a higher shift is a smaller change for the worse
		c.WorseLo, c.WorseHi = c.WorseHi, c.WorseLo
	}
	interval := fmt.Sprintf("%s [%s, %s]", pctText(c.Worse), pctText(c.WorseLo), pctText(c.WorseHi))
	switch {
	case cmp.P < st.Alpha && float64(c.WorseLo) > m.Tolerance:
		c.Verdict = Regression
		c.Reason = fmt.Sprintf("%.1f%% worse (p=%s < %.3g), its interval %s at %.0f%% beyond the %.0f%% tolerance", 100*c.Worse, pText(c.P), st.Alpha, interval, 100*st.Equivalence, 100*m.Tolerance)
	case c.WorseHi.Finite() && float64(c.WorseHi) <= m.Tolerance:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("change for the worse %s at %.0f%%: within the %.0f%% tolerance (p=%s)", interval, 100*st.Equivalence, 100*m.Tolerance, pText(c.P))
	default:
		c.Verdict = Inconclusive
		c.Reason = fmt.Sprintf("change for the worse %s at %.0f%% reaches past the %.0f%% tolerance and is not a significant regression (p=%s): more runs would tell", interval, 100*st.Equivalence, 100*m.Tolerance, pText(c.P))
	}
	return c
}

// ShiftInterval is the Hodges-Lehmann estimate of the shift of log(cand)
// from log(base) (the median of every pairwise difference) and its
// distribution-free interval at the given level, from the exact
// Mann-Whitney U distribution: the interval the U test inverts. A bound is
// infinite when the runs are too few for the level. Every value must be
// positive.
func ShiftInterval(base, cand []float64, level float64) (est, lo, hi float64) {
	d := make([]float64, 0, len(base)*len(cand))
	for _, y := range cand {
		for _, x := range base {
			d = append(d, math.Log(y)-math.Log(x))
		}
	}
	slices.Sort(d)
	nd := len(d)
	if nd%2 == 1 {
		est = d[nd/2]
	} else {
		est = (d[nd/2-1] + d[nd/2]) / 2
	}
	k := uQuantile(len(base), len(cand), (1-level)/2) // P(U <= k-1) <= (1-level)/2
	if k < 1 {
		return est, math.Inf(-1), math.Inf(1)
	}
	return est, d[k-1], d[nd-k]
}

// uQuantile is the number k of smallest U values with P(U <= k-1) <= tail
// under the null (two samples of sizes n, m from one distribution, no ties):
// the k-th smallest pairwise difference is the lower bound of the shift's
// interval. Exact for n*m <= 2,500, the normal approximation beyond.
func uQuantile(n, m int, tail float64) int {
	nm := n * m
	if nm > 2500 {
		mu, sd := float64(nm)/2, math.Sqrt(float64(nm*(n+m+1))/12)
		z := math.Sqrt2 * math.Erfinv(1-2*tail)
		return max(0, int(math.Floor(mu-z*sd+0.5)))
	}
	// cnt[j][u]: arrangements of i and j values with U = u, row by row
	// over i: cnt(i, j, u) = cnt(i-1, j, u-j) + cnt(i, j-1, u)
	prev := make([][]float64, m+1)
	for j := range prev {
		prev[j] = []float64{1} // i = 0: U is 0
	}
	for i := 1; i <= n; i++ {
		cur := make([][]float64, m+1)
		cur[0] = []float64{1}
		for j := 1; j <= m; j++ {
			row := make([]float64, i*j+1)
			for u, v := range prev[j] {
				row[u+j] += v // the i-th value above all j others
			}
			for u, v := range cur[j-1] {
				row[u] += v
			}
			cur[j] = row
		}
		prev = cur
	}
	f := prev[m]
	total := 0.0
	for _, v := range f {
		total += v
	}
	cum := 0.0
	for u, v := range f {
		cum += v
		if cum/total > tail {
			return u
		}
	}
	return nm
}

// worse is a log shift as a change for the worse.
func worse(m Metric, shift float64) Num {
	if m.HigherIsBetter {
		return Num(1 - math.Exp(shift))
	}
	return Num(math.Exp(shift) - 1)
}

func pctText(n Num) string {
	switch {
	case math.IsNaN(float64(n)):
		return "-"
	case math.IsInf(float64(n), 1):
		return "+inf"
	case math.IsInf(float64(n), -1):
		return "-inf"
	}
	return fmt.Sprintf("%+.1f%%", 100*n)
}

func summarize(vals []float64, s *benchmath.Sample, confidence float64, warnings *[]string) Summary {
	out := Summary{N: len(vals), Values: slices.Clone(vals), Median: Num(math.NaN()), Lo: Num(math.NaN()), Hi: Num(math.NaN())}
	if out.Values == nil {
		out.Values = []float64{}
	}
	if len(vals) == 0 {
		return out
	}
	sum := benchmath.AssumeNothing.Summary(s, confidence)
	out.Median, out.Lo, out.Hi = Num(sum.Center), Num(sum.Lo), Num(sum.Hi)
	for _, w := range sum.Warnings {
		if !slices.Contains(*warnings, w.Error()) {
			*warnings = append(*warnings, w.Error())
		}
	}
	return out
}

// ratio is cand/base (NaN when either is not a number or base is 0).
func ratio(base, cand Num) Num {
	if base == 0 || math.IsNaN(float64(base)) || math.IsNaN(float64(cand)) {
		return Num(math.NaN())
	}
	return cand / base
}

// Overall is the gate's verdict over its metrics: a regression in any
// metric, else inconclusive if any metric that is not a guard is (or no
// metric is compared), else pass.
func Overall(cs []Comparison) Verdict {
	v := Pass
	if len(cs) == 0 {
		v = Inconclusive
	}
	for _, c := range cs {
		switch {
		case c.Verdict == Regression:
			return Regression
		case c.Verdict == Inconclusive && !c.Guard:
			v = Inconclusive
		}
	}
	return v
}

// Num is a float64 that is null in JSON when it is not a finite number (a
// median of no runs, an interval too few runs cannot bound, an untested p).
type Num float64

// Finite reports whether n is neither NaN nor infinite.
func (n Num) Finite() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	if !n.Finite() {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

// UnmarshalJSON implements json.Unmarshaler (null reads as NaN).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = Num(f)
	return err
}
