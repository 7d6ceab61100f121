package reports

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// Us formats a latency in microseconds for people: 850us, 12.3ms, 1.52s.
func Us(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dus", us)
	case us < 100_000:
		return fmt.Sprintf("%.2fms", float64(us)/1000)
	case us < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(us)/1000)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}

// Count formats an integer with thousands separators: 1,234,567.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Rate formats a per-second rate with thousands separators: 66,667/s.
func Rate(x float64) string { return Count(int64(x+0.5)) + "/s" }

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteText writes the summary of one run: what ran where, messages,
// losses, errors, latency per operation, phases, the driver's self-check,
// the ceiling ratio and the thresholds.
func WriteText(w io.Writer, r Run) error {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "chatbench %s  (%s)\n", s.Scenario, r.Dir)
	fmt.Fprintf(&b, "scenario   %s  seed %d  clients %s  rooms %s  topology %s  target %s\n",
		s.Scenario, s.Seed, Count(int64(s.Clients)), Count(int64(s.Rooms)), orDash(s.Topology), orDash(s.Target))
	fmt.Fprintf(&b, "run        %s  %.1fs  commit %s  %s  GOMAXPROCS %d\n",
		s.Start.UTC().Format(time.DateTime+" MST"), s.DurationSeconds, orDash(s.Commit), orDash(s.GoVersion), s.GOMAXPROCS)
	m := s.Machine
	fmt.Fprintf(&b, "machine    %s, %d cores, %s, %s/%s, kernel %s (fingerprint %s)\n",
		orDash(m.CPUModel), m.Cores, gib(m.MemoryBytes), m.OS, m.Arch, orDash(m.Kernel), orDash(m.Fingerprint))
	if len(s.Parts) > 0 {
		fmt.Fprintf(&b, "merged     %d parts\n", len(s.Parts))
	}
	c := s.Counters
	b.WriteString("\n")
	extra := ""
	if c.Extra > 0 {
		extra = fmt.Sprintf(" (+%s to members mid-switch)", Count(c.Extra))
	}
	fmt.Fprintf(&b, "messages   sent %s, delivered %s of %s expected%s\n", Count(c.Sent), Count(c.Delivered), Count(c.Expected), extra)
	fmt.Fprintf(&b, "throughput %s deliveries/s over the message phases (peak second %s)\n",
		Count(int64(s.DeliveriesPerSec+0.5)), Rate(s.PeakDeliveriesPerSec))
	fmt.Fprintf(&b, "losses     lost %s, duplicated %s, out of order %s, late sends %s\n",
		Count(c.Lost), Count(c.Duplicated), Count(c.OutOfOrder), Count(c.LateSends))
	if c.Misrouted > 0 {
		fmt.Fprintf(&b, "           misrouted %s (chat messages delivered to a client that was not a recipient)\n", Count(c.Misrouted))
	}
	fmt.Fprintf(&b, "errors     %s of %s requests (%.2f%%)%s\n", Count(c.Errors), Count(c.Requests), 100*s.ErrorRate(), errorBreakdown(c))
	if c.Clamped > 0 {
		fmt.Fprintf(&b, "           %s latencies outside 1us..1h were clamped\n", Count(c.Clamped))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	ops := headlineOrder(s.OpNames())
	width := len("latency")
	for _, op := range ops {
		width = max(width, len(op))
	}
	fmt.Fprintf(tw, "%-*s\tcount\tmin\tp50\tp90\tp99\tp99.9\tmax\tmean\t\n", width, "latency")
	for _, op := range ops {
		st := s.Ops[op]
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", width, op, Count(st.Count), Us(st.MinUs), Us(st.P50Us),
			Us(st.P90Us), Us(st.P99Us), Us(st.P999Us), Us(st.MaxUs), Us(int64(st.MeanUs+0.5)))
	}
	if len(s.Ops) == 0 {
		fmt.Fprintln(tw, "(no samples)\t\t\t\t\t\t\t\t\t")
	}
	tw.Flush()
	if len(s.Phases) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		pw, kw := len("phase"), len("kind")
		for _, p := range s.Phases {
			pw, kw = max(pw, len(p.Name)), max(kw, len(p.Kind))
		}
		fmt.Fprintf(tw, "%-*s\t%-*s\tstart\tend\tsent\tdelivered\tdeliveries/s\t\n", pw, "phase", kw, "kind")
		for _, p := range s.Phases {
			fmt.Fprintf(tw, "%-*s\t%-*s\t%.1fs\t%.1fs\t%s\t%s\t%s\t%s\n", pw, p.Name, kw, p.Kind, p.Start.Sub(s.Start).Seconds(),
				p.End.Sub(s.Start).Seconds(), Count(p.Sent), Count(p.Delivered), Rate(p.DeliveriesPerSec), activeText(p))
		}
		tw.Flush()
	}
	b.WriteString("\n")
	b.WriteString("driver     " + driverVerdict(s.Driver) + "\n")
	if s.Ceiling != nil {
		fmt.Fprintf(&b, "ceiling    %.2f of this machine's ceiling (%s deliveries/s, fingerprint %s)\n",
			s.Ceiling.Ratio, Count(int64(s.Ceiling.DeliveriesPerSec+0.5)), orDash(s.Ceiling.Fingerprint))
	}
	if len(s.Thresholds) > 0 {
		pass := true
		for _, t := range s.Thresholds {
			pass = pass && thresholdPass(s, t)
		}
		fmt.Fprintf(&b, "thresholds %s\n", map[bool]string{true: "PASS", false: "FAIL"}[pass])
		for _, t := range s.Thresholds {
			verdict := "ok  "
			if !thresholdPass(s, t) {
				verdict = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %-22s %s\n", verdict, t.Name, thresholdText(s, t))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// activeText is the burst throughput of a storm phase: its deliveries over
// its active window (first scheduled send to last delivery) rather than over
// the whole phase, which includes the quiet time between bursts.
func activeText(p metrics.PhaseStats) string {
	if p.Kind != "storm" || p.ActiveDeliveriesPerSec <= 0 || p.ActiveS <= 0 {
		return ""
	}
	return fmt.Sprintf("  burst %s over %.1f s active", Rate(p.ActiveDeliveriesPerSec), p.ActiveS)
}

func errorBreakdown(c metrics.Counters) string {
	if c.Errors == 0 {
		return ""
	}
	codeName := func(code int) string {
		if code == 0 {
			return "no code"
		}
		return strconv.Itoa(code)
	}
	out := ": by code " + counts(c.ErrorsByCode, codeName) + "; by kind " + counts(c.ErrorsByKind, nil)
	if len(c.ErrorsByOp) > 0 {
		out += "; by operation " + counts(c.ErrorsByOp, nil)
	}
	return out
}

// counts lists m as "key xN, key xN" in the order of its keys, each key
// named by name (nil: fmt.Sprint).
func counts[K cmp.Ordered](m map[K]int64, name func(K) string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n := fmt.Sprint(k)
		if name != nil {
			n = name(k)
		}
		parts = append(parts, fmt.Sprintf("%s x%s", n, Count(m[k])))
	}
	return strings.Join(parts, ", ")
}

func driverVerdict(d metrics.DriverCheck) string {
	v := "ok"
	if d.DriverBound {
		v = "DRIVER-BOUND, results invalid: " + orDash(d.DriverBoundWhy)
	}
	v += fmt.Sprintf(" (cpu %.0f%%, gc pause max %s total %s, scheduler lag p99 %s max %s",
		d.CPUPercent, Us(d.GCPauseMaxUs), Us(d.GCPauseTotalUs), Us(d.SchedLagP99Us), Us(d.SchedLagMaxUs))
	if d.MemoryPerClientB > 0 {
		v += fmt.Sprintf(", %s bytes per client", Count(d.MemoryPerClientB))
	}
	return v + ")"
}

// latencyOp is the operation a latency threshold is about: "delivery" for
// p99_delivery_max (thresholds named p<quantile>_<op>_max, in us).
func latencyOp(t metrics.ThresholdResult) (string, bool) {
	if t.Unit != "us" || !strings.HasPrefix(t.Name, "p") {
		return "", false
	}
	_, rest, ok := strings.Cut(t.Name, "_")
	if !ok {
		return "", false
	}
	op, ok := strings.CutSuffix(rest, "_max")
	return op, ok && op != ""
}

// noSamples reports whether t is a latency threshold whose operation has no
// sample in s: a percentile of nothing is undefined, not 0.
func noSamples(s *metrics.Summary, t metrics.ThresholdResult) bool {
	op, ok := latencyOp(t)
	return ok && s.Ops[op].Count == 0
}

// thresholdPass is t.Pass, except that a latency threshold without samples
// always fails (summaries written before the evaluator checked this may
// say pass).
func thresholdPass(s *metrics.Summary, t metrics.ThresholdResult) bool {
	return t.Pass && !noSamples(s, t)
}

func thresholdText(s *metrics.Summary, t metrics.ThresholdResult) string {
	op := "<="
	if strings.HasPrefix(t.Name, "min_") {
		op = ">="
	}
	switch t.Unit {
	case "us":
		if noSamples(s, t) {
			name, _ := latencyOp(t)
			return fmt.Sprintf("no samples (no %s was measured; limit %s)", name, Us(int64(t.Limit)))
		}
		return fmt.Sprintf("%s %s %s", Us(int64(t.Actual)), op, Us(int64(t.Limit)))
	case "1/s":
		return fmt.Sprintf("%s %s %s", Rate(t.Actual), op, Rate(t.Limit))
	default:
		return fmt.Sprintf("%.4g %s %.4g", t.Actual, op, t.Limit)
	}
}

// WriteComparison writes one row per run: scenario, topology, target
// (single and split runs of one scenario are different rows), clients, deliveries/s, delivery
// percentiles, last-recipient p99, losses, errors, driver verdict and
// ceiling ratio; later rows also show deliveries/s and p99 relative to the
// first run.
func WriteComparison(w io.Writer, runs []Run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	rw, sw, tw0, gw := len("run"), len("scenario"), len("topology"), len("target")
	for _, r := range runs {
		rw, sw = max(rw, len(r.Label)), max(sw, len(r.Summary.Scenario))
		tw0, gw = max(tw0, len(orDash(r.Summary.Topology))), max(gw, len(orDash(r.Summary.Target)))
	}
	fmt.Fprintf(tw, "%-*s\t%-*s\t%-*s\t%-*s\tclients\tdeliveries/s\tvs first\tp50\tp99\tp99 vs first\tp99.9\tmax\tlast p99\tlost\tdup\tooo\terrors\tdriver\tceiling\t\n", rw, "run", sw, "scenario", tw0, "topology", gw, "target")
	var base *metrics.Summary
	for _, r := range runs {
		s := r.Summary
		d := s.Ops["delivery"]
		rel, relP99 := "", ""
		if base == nil {
			base = s
		} else {
			rel = ratio(s.DeliveriesPerSec, base.DeliveriesPerSec)
			relP99 = ratio(float64(d.P99Us), float64(base.Ops["delivery"].P99Us))
		}
		drv := "ok"
		if s.Driver.DriverBound {
			drv = "BOUND"
		}
		ceil := "-"
		if s.Ceiling != nil {
			ceil = fmt.Sprintf("%.2f", s.Ceiling.Ratio)
		}
		fmt.Fprintf(tw, "%-*s\t%-*s\t%-*s\t%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rw, r.Label, sw, s.Scenario,
			tw0, orDash(s.Topology), gw, orDash(s.Target), Count(int64(s.Clients)), Rate(s.DeliveriesPerSec), orDash(rel), Us(d.P50Us), Us(d.P99Us), orDash(relP99),
			Us(d.P999Us), Us(d.MaxUs), Us(s.Ops["last_recipient"].P99Us), Count(s.Counters.Lost),
			Count(s.Counters.Duplicated), Count(s.Counters.OutOfOrder), Count(s.Counters.Errors), drv, ceil)
	}
	return tw.Flush()
}

func ratio(a, b float64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("x%.2f", a/b)
}

// headlineOrder puts the delivery operations first: they are what a chat
// benchmark is about; the others follow in their usual order.
func headlineOrder(ops []string) []string {
	first := []string{"delivery", "last_recipient", "send_ack"}
	out := make([]string, 0, len(ops))
	for _, f := range first {
		for _, op := range ops {
			if op == f {
				out = append(out, op)
			}
		}
	}
	for _, op := range ops {
		if op != first[0] && op != first[1] && op != first[2] {
			out = append(out, op)
		}
	}
	return out
}
