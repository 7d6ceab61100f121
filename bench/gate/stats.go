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
	// (0.05: 5% fewer deliveries/s, or a 5% higher latency), even when it
	// is statistically significant.
	Tolerance float64 `json:"tolerance"`
	// MaxSpread is the widest confidence interval of a median, relative to
	// the median, that the gate accepts as "no difference": wider, and a
	// comparison that finds no significant change is inconclusive.
	MaxSpread float64 `json:"max_spread"`
}

// DefaultMetrics are the gate's metrics and their default tolerances: the
// delivery rate of a server-bound scenario moves a few percent between runs
// on a quiet machine (tens of percent on a busy one), its latencies more.
// The server's CPU per delivery is the steadiest: other load on the
// machine delays the server's work but does not add to it.
func DefaultMetrics() []Metric {
	return []Metric{
		{Name: "deliveries_per_s", Unit: "1/s", HigherIsBetter: true, Tolerance: 0.05, MaxSpread: 0.30},
		{Name: "delivery_p50_ms", Unit: "ms", Tolerance: 0.20, MaxSpread: 0.80},
		{Name: "delivery_p99_ms", Unit: "ms", Tolerance: 0.25, MaxSpread: 1.00},
		{Name: "server_cpu_us_per_delivery", Unit: "us", Tolerance: 0.05, MaxSpread: 0.30},
	}
}

// Stats sets the statistics of the comparison.
type Stats struct {
	Alpha      float64 // significance level of the U test (default 0.01: few false alarms; CompareRuns splits it over the metrics)
	Confidence float64 // level of the medians' intervals (default 0.95)
	MinRuns    int     // measured runs each version needs (default 6: a finite 95% interval of a median)
}

func (s Stats) withDefaults() Stats {
	if s.Alpha == 0 {
		s.Alpha = 0.01
	}
	if s.Confidence == 0 {
		s.Confidence = 0.95
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
	// better.
	Worse      Num      `json:"worse"`
	P          Num      `json:"p"` // Mann-Whitney U test, two-sided (null: not tested)
	Alpha      float64  `json:"alpha"`
	Confidence float64  `json:"confidence"`
	Verdict    Verdict  `json:"verdict"`
	Reason     string   `json:"reason"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Compare judges one metric from the two versions' measured runs:
//   - fewer than MinRuns runs of either version: inconclusive;
//   - a significant change (p < alpha) worse than the tolerance: regression;
//   - a significant change within the tolerance (or for the better): pass;
//   - no significant change, but the medians differ for the worse by more
//     than the tolerance, or a median's interval is wider than MaxSpread:
//     inconclusive (more runs, or a quieter machine, would tell);
//   - otherwise: pass.
func Compare(m Metric, base, cand []float64, st Stats) Comparison {
	st = st.withDefaults()
	c := Comparison{Metric: m, Alpha: st.Alpha, Confidence: st.Confidence}
	thr := benchmath.DefaultThresholds
	thr.CompareAlpha = st.Alpha
	a, b := benchmath.NewSample(slices.Clone(base), &thr), benchmath.NewSample(slices.Clone(cand), &thr)
	c.Baseline = summarize(base, a, st.Confidence, &c.Warnings)
	c.Candidate = summarize(cand, b, st.Confidence, &c.Warnings)
	if len(base) < st.MinRuns || len(cand) < st.MinRuns {
		c.Verdict, c.P = Inconclusive, Num(math.NaN())
		c.Reason = fmt.Sprintf("too few measured runs: %d baseline, %d candidate, need %d each", len(base), len(cand), st.MinRuns)
		c.Ratio, c.Worse = ratio(m, c.Baseline.Median, c.Candidate.Median)
		return c
	}
	cmp := benchmath.AssumeNothing.Compare(a, b)
	for _, w := range cmp.Warnings {
		c.Warnings = append(c.Warnings, w.Error())
	}
	c.P = Num(cmp.P)
	c.Ratio, c.Worse = ratio(m, c.Baseline.Median, c.Candidate.Median)
	significant := cmp.P < st.Alpha
	spread := max(relWidth(c.Baseline), relWidth(c.Candidate))
	switch {
	case significant && float64(c.Worse) > m.Tolerance:
		c.Verdict = Regression
		c.Reason = fmt.Sprintf("%.1f%% worse (p=%s < %.3g), beyond the %.0f%% tolerance", 100*c.Worse, pText(c.P), st.Alpha, 100*m.Tolerance)
	case significant:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("a significant change (p=%s) of %+.1f%%, within the %.0f%% tolerance", pText(c.P), -100*c.Worse, 100*m.Tolerance)
	case float64(c.Worse) > m.Tolerance:
		c.Verdict = Inconclusive
		c.Reason = fmt.Sprintf("%.1f%% worse but not significant (p=%s): more runs would tell", 100*c.Worse, pText(c.P))
	case spread > m.MaxSpread:
		c.Verdict = Inconclusive
		c.Reason = fmt.Sprintf("too much spread: a median's %.0f%% interval is %.0f%% of it (most %.0f%%)", 100*st.Confidence, 100*spread, 100*m.MaxSpread)
	default:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("no significant change (p=%s)", pText(c.P))
	}
	return c
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

// ratio is cand/base and the change for the worse as a fraction.
func ratio(m Metric, base, cand Num) (r, worse Num) {
	if base == 0 || math.IsNaN(float64(base)) || math.IsNaN(float64(cand)) {
		return Num(math.NaN()), Num(math.NaN())
	}
	r = cand / base
	if m.HigherIsBetter {
		return r, 1 - r
	}
	return r, r - 1
}

// relWidth is a median's interval relative to the median (+Inf when the
// interval is not finite).
func relWidth(s Summary) float64 {
	if s.Median == 0 || !s.Lo.Finite() || !s.Hi.Finite() {
		return math.Inf(1)
	}
	return float64(s.Hi-s.Lo) / math.Abs(float64(s.Median))
}

// Overall is the gate's verdict over its metrics: a regression in any
// metric, else inconclusive if any is, else pass.
func Overall(cs []Comparison) Verdict {
	v := Pass
	for _, c := range cs {
		switch {
		case c.Verdict == Regression:
			return Regression
		case c.Verdict == Inconclusive:
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
