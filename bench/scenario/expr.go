package scenario

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// Expr is one threshold expression on any metric of a run, in the manner of
// k6's thresholds: a metric, a comparison and a limit, as in
//
//	delivery.p99 < 50ms         an operation's latency percentile (or min, mean, max, count)
//	last_recipient.p99.9 < 200ms
//	lost == 0                   a counter
//	errors.rate < 0.1%          a counter as a share of its total (errors/requests, lost/expected, ...)
//	deliveries_per_s > 50000    a rate
type Expr struct {
	Text   string  // as written, normalised spacing
	Metric string  // "delivery.p99", "lost", "errors.rate", "deliveries_per_s"
	Op     string  // <, <=, >, >=, ==, !=
	Limit  float64 // in Unit
	Unit   string  // "us" (latencies), "ratio" (rates), "count", "1/s"
	Line   int     // line in the scenario file (0: built in code)

	get func(*metrics.Summary) (float64, bool)
}

// ThresholdOps are the operations a latency threshold may name: the
// driver's built-in operations and the extra ones it records (join, on_add,
// send_lag).
var ThresholdOps = append(slices.Clone(metrics.OpNames()), "join", "on_add", "send_lag")

// Latency aggregations of an operation (k6's avg, med and p(N) are
// accepted as mean, p50 and pN).
var latencyAggs = []string{"min", "mean", "p50", "p90", "p99", "p99.9", "max", "count"}

// Counter metrics, and the denominator of each one's .rate.
var counterMetrics = []struct {
	name, per string
	get       func(*metrics.Counters) int64
	total     func(*metrics.Counters) int64
}{
	{"sent", "", func(c *metrics.Counters) int64 { return c.Sent }, nil},
	{"expected", "", func(c *metrics.Counters) int64 { return c.Expected }, nil},
	{"delivered", "expected", func(c *metrics.Counters) int64 { return c.Delivered }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"lost", "expected", func(c *metrics.Counters) int64 { return c.Lost }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"duplicated", "expected", func(c *metrics.Counters) int64 { return c.Duplicated }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"out_of_order", "expected", func(c *metrics.Counters) int64 { return c.OutOfOrder }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"misrouted", "expected", func(c *metrics.Counters) int64 { return c.Misrouted }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"extra", "expected", func(c *metrics.Counters) int64 { return c.Extra }, func(c *metrics.Counters) int64 { return c.Expected }},
	{"late_sends", "sent", func(c *metrics.Counters) int64 { return c.LateSends }, func(c *metrics.Counters) int64 { return c.Sent }},
	{"requests", "", func(c *metrics.Counters) int64 { return c.Requests }, nil},
	{"errors", "requests", func(c *metrics.Counters) int64 { return c.Errors }, func(c *metrics.Counters) int64 { return c.Requests }},
}

var rateMetrics = map[string]func(*metrics.Summary) float64{
	"deliveries_per_s":      func(s *metrics.Summary) float64 { return s.DeliveriesPerSec },
	"peak_deliveries_per_s": func(s *metrics.Summary) float64 { return s.PeakDeliveriesPerSec },
}

// ThresholdMetrics lists every metric a threshold expression may name.
func ThresholdMetrics() []string {
	var out []string
	for _, op := range ThresholdOps {
		out = append(out, op+".{"+strings.Join(latencyAggs, ",")+"}")
	}
	for _, c := range counterMetrics {
		if c.total != nil {
			out = append(out, c.name, c.name+".rate")
		} else {
			out = append(out, c.name)
		}
	}
	out = append(out, "deliveries_per_s", "peak_deliveries_per_s")
	return out
}

var exprRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.()]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$`)

const exprForm = `write METRIC OP VALUE, e.g. "delivery.p99 < 50ms", "lost == 0", "errors.rate < 0.1%", "deliveries_per_s > 50000" (OP: <, <=, >, >=, ==, !=)`

// ParseExpr parses one threshold expression. Its error says what is wrong
// and how to write it.
func ParseExpr(text string) (Expr, error) {
	m := exprRE.FindStringSubmatch(text)
	if m == nil {
		return Expr{}, fmt.Errorf("malformed threshold %q: %s", text, exprForm)
	}
	e := Expr{Metric: m[1], Op: m[2]}
	val := m[3]
	if err := e.resolve(); err != nil {
		return Expr{}, err
	}
	limit, err := parseLimit(val, e.Unit)
	if err != nil {
		return Expr{}, fmt.Errorf("threshold %q: %w", text, err)
	}
	e.Limit = limit
	e.Text = e.Metric + " " + e.Op + " " + val
	return e, nil
}

// resolve finds the metric, its unit and how to read it from a summary.
func (e *Expr) resolve() error {
	name := e.Metric
	if get, ok := rateMetrics[name]; ok {
		e.Unit, e.get = "1/s", func(s *metrics.Summary) (float64, bool) { return get(s), true }
		return nil
	}
	base, rate := strings.CutSuffix(name, ".rate")
	for _, c := range counterMetrics {
		if c.name != base {
			continue
		}
		if !rate {
			e.Unit = "count"
			e.get = func(s *metrics.Summary) (float64, bool) { return float64(c.get(&s.Counters)), true }
			return nil
		}
		if c.total == nil {
			return fmt.Errorf("unknown metric %q: %s has no .rate; use %s alone", name, base, base)
		}
		e.Unit = "ratio"
		e.get = func(s *metrics.Summary) (float64, bool) {
			n, t := c.get(&s.Counters), c.total(&s.Counters)
			if t == 0 {
				return 0, n == 0
			}
			return float64(n) / float64(t), true
		}
		return nil
	}
	op, agg, ok := strings.Cut(name, ".")
	if ok && slices.Contains(ThresholdOps, op) {
		agg = normalizeAgg(agg)
		if !slices.Contains(latencyAggs, agg) {
			return fmt.Errorf("unknown metric %q: %s has %s (p(99) = p99, avg = mean, med = p50)", name, op, strings.Join(latencyAggs, ", "))
		}
		e.Metric = op + "." + agg
		e.Unit = "us"
		if agg == "count" {
			e.Unit = "count"
		}
		e.get = func(s *metrics.Summary) (float64, bool) {
			st, ok := s.Ops[op]
			if !ok || st.Count == 0 {
				return 0, agg == "count"
			}
			switch agg {
			case "min":
				return float64(st.MinUs), true
			case "mean":
				return st.MeanUs, true
			case "p50":
				return float64(st.P50Us), true
			case "p90":
				return float64(st.P90Us), true
			case "p99":
				return float64(st.P99Us), true
			case "p99.9":
				return float64(st.P999Us), true
			case "max":
				return float64(st.MaxUs), true
			}
			return float64(st.Count), true
		}
		return nil
	}
	switch {
	case ok:
		return fmt.Errorf("unknown metric %q: no operation %q%s (operations: %s; aggregations: %s)", name, op, didYouMean(op, ThresholdOps), strings.Join(ThresholdOps, ", "), strings.Join(latencyAggs, ", "))
	case slices.Contains(ThresholdOps, name):
		return fmt.Errorf("unknown metric %q: %s is an operation: name an aggregation, e.g. %s.p99", name, name, name)
	}
	var names []string
	for _, c := range counterMetrics {
		names = append(names, c.name)
	}
	for n := range rateMetrics {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Errorf("unknown metric %q%s: name an OPERATION.AGGREGATION (e.g. delivery.p99), a counter (%s; COUNTER.rate for a share), or deliveries_per_s, peak_deliveries_per_s",
		name, didYouMean(name, append(names, ThresholdOps...)), strings.Join(names, ", "))
}

// didYouMean suggests the closest of known to s (by edit distance, when
// close enough), as ", did you mean X?".
func didYouMean(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func normalizeAgg(a string) string {
	switch a {
	case "avg":
		return "mean"
	case "med":
		return "p50"
	case "p999":
		return "p99.9"
	}
	if in, ok := strings.CutPrefix(a, "p("); ok {
		return "p" + strings.TrimSuffix(in, ")")
	}
	return a
}

// parseLimit reads a limit in the metric's unit: a duration for latencies
// (50ms, 1.5s, 800us), a fraction or a percentage for rates (0.001, 0.1%),
// a plain number otherwise (50000, 5e4, 50_000).
func parseLimit(v, unit string) (float64, error) {
	switch unit {
	case "us":
		d, err := time.ParseDuration(strings.ReplaceAll(v, "µs", "us"))
		if err != nil {
			if _, nerr := strconv.ParseFloat(v, 64); nerr == nil {
				return 0, fmt.Errorf("a latency limit needs a unit: write %sms (or us, s)", v)
			}
			return 0, fmt.Errorf("%q is not a duration: write a latency like 50ms, 800us or 1.5s", v)
		}
		return float64(d) / float64(time.Microsecond), nil
	case "ratio":
		if p, ok := strings.CutSuffix(v, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || f < 0 || f > 100 {
				return 0, fmt.Errorf("%q is not a percentage: write a rate like 0.1%% or 0.001", v)
			}
			return f / 100, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("%q is not a rate: write a fraction 0..1 (0.001) or a percentage (0.1%%)", v)
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(v, "_", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number: write a plain number like 50000", v)
	}
	return f, nil
}

// Check evaluates the expression on a run. A latency of an operation with
// no samples fails (there is nothing to judge), and so does a rate whose
// denominator is 0 while its count is not.
func (e Expr) Check(s *metrics.Summary) metrics.ThresholdResult {
	r := metrics.ThresholdResult{Name: e.Text, Limit: e.Limit, Unit: e.Unit}
	v, ok := e.get(s)
	r.Actual = v
	if !ok {
		return r
	}
	switch e.Op {
	case "<":
		r.Pass = v < e.Limit
	case "<=":
		r.Pass = v <= e.Limit
	case ">":
		r.Pass = v > e.Limit
	case ">=":
		r.Pass = v >= e.Limit
	case "==":
		r.Pass = v == e.Limit
	case "!=":
		r.Pass = v != e.Limit
	}
	return r
}

// isMetric reports whether name is a counter or a rate metric (a key of
// the k6-style mapping form).
func isMetric(name string) bool {
	if _, ok := rateMetrics[name]; ok {
		return true
	}
	for _, c := range counterMetrics {
		if c.name == name {
			return true
		}
	}
	return false
}
