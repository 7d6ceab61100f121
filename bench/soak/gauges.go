package soak

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Gauges are one process's leak indicators, as its /metrics reports them.
type Gauges struct {
	RSS        float64 // process_resident_memory_bytes
	Goroutines float64 // go_goroutines
	FDs        float64 // process_open_fds
}

// Sample is one read of one target's /metrics.
type Sample struct {
	At     time.Duration // since the run started
	Phase  string        // PhaseBefore, PhaseLoad or PhaseAfter
	Target int           // index into Options.Metrics
	Gauges
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

// Scrape reads url (a Prometheus text /metrics) and returns its gauges. A
// page without all three is an error naming the missing one.
func Scrape(ctx context.Context, url string) (Gauges, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Gauges{}, fmt.Errorf("metrics %s: %w", url, err)
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return Gauges{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Gauges{}, fmt.Errorf("metrics %s: HTTP %s", url, resp.Status)
	}
	g, err := parseGauges(bufio.NewScanner(resp.Body))
	if err != nil {
		return Gauges{}, fmt.Errorf("metrics %s: %w", url, err)
	}
	return g, nil
}

func parseGauges(sc *bufio.Scanner) (Gauges, error) {
	var g Gauges
	want := map[string]*float64{
		"process_resident_memory_bytes": &g.RSS,
		"go_goroutines":                 &g.Goroutines,
		"process_open_fds":              &g.FDs,
	}
	seen := map[string]bool{}
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if p := want[name]; p != nil {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return g, fmt.Errorf("%s: %w", name, err)
			}
			*p, seen[name] = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return g, err
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines", "process_open_fds"} {
		if !seen[name] {
			return g, fmt.Errorf("no %s (is this a chatbench server's /metrics?)", name)
		}
	}
	return g, nil
}

// field names the three gauges for messages and files.
var fields = []struct {
	name string
	get  func(*Gauges) float64
	unit func(float64) string
}{
	{"process_resident_memory_bytes", func(g *Gauges) float64 { return g.RSS }, func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }},
	{"go_goroutines", func(g *Gauges) float64 { return g.Goroutines }, count},
	{"process_open_fds", func(g *Gauges) float64 { return g.FDs }, count},
}

// count prints a whole number ("0", never "-0" for a small negative trend).
func count(v float64) string {
	if math.Abs(v) < 0.5 {
		v = 0
	}
	return fmt.Sprintf("%.0f", v)
}

func (m *Margins) of(i int) float64 {
	return [...]float64{m.RSSBytes, m.Goroutines, m.FDs}[i]
}

// medians returns, per target, the median of each gauge over the samples
// of phase.
func medians(samples []Sample, targets int, phase string) []Gauges {
	out := make([]Gauges, targets)
	for t := range targets {
		var v [3][]float64
		for _, s := range samples {
			if s.Target == t && s.Phase == phase {
				for i, f := range fields {
					v[i] = append(v[i], f.get(&s.Gauges))
				}
			}
		}
		out[t] = Gauges{RSS: median(v[0]), Goroutines: median(v[1]), FDs: median(v[2])}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// lastSamples returns each target's last sample (zero Gauges if none).
func lastSamples(samples []Sample, targets int) []Gauges {
	out := make([]Gauges, targets)
	for _, s := range samples {
		out[s.Target] = s.Gauges
	}
	return out
}

// trend fits a least-squares line to each gauge of target over the load
// samples taken after from, and returns the growth it projects over their
// span (slope x span). Fewer than 3 samples: zero.
func trend(samples []Sample, target int, from time.Duration) Gauges {
	var xs []float64
	var ys [3][]float64
	for _, s := range samples {
		if s.Target == target && s.Phase == PhaseLoad && s.At >= from {
			xs = append(xs, s.At.Seconds())
			for i, f := range fields {
				ys[i] = append(ys[i], f.get(&s.Gauges))
			}
		}
	}
	if len(xs) < 3 {
		return Gauges{}
	}
	span := xs[len(xs)-1] - xs[0]
	g := [3]float64{}
	for i := range ys {
		g[i] = slope(xs, ys[i]) * span
	}
	return Gauges{RSS: g[0], Goroutines: g[1], FDs: g[2]}
}

func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// backFailures says which gauges of last are not back within their margin
// of the baseline.
func (r *runner) backFailures(last []Gauges) []string {
	var out []string
	for t, g := range last {
		base := r.res.Baseline[t]
		for i, f := range fields {
			if d := f.get(&g) - f.get(&base); d > r.o.Margins.of(i) {
				out = append(out, fmt.Sprintf("%s: %s %s after the load, baseline %s: +%s, over the margin of %s",
					r.o.Metrics[t], f.name, f.unit(f.get(&g)), f.unit(f.get(&base)), f.unit(d), f.unit(r.o.Margins.of(i))))
			}
		}
	}
	return out
}

// verdict fills Final, Growth and Failures.
func (r *runner) verdict() {
	res := r.res
	n := len(r.o.Metrics)
	res.Final = lastSamples(res.Samples, n)
	var fails []string
	for t := range n {
		if !hasPhase(res.Samples, t, PhaseAfter) {
			fails = append(fails, fmt.Sprintf("%s: no sample after the load (server gone?)", r.o.Metrics[t]))
		}
	}
	fails = append(fails, r.backFailures(res.Final)...)
	from := r.loadStart.Sub(res.Start) + r.o.Warmup
	res.Growth = make([]Gauges, n)
	for t := range n {
		res.Growth[t] = trend(res.Samples, t, from)
		g := res.Growth[t]
		for i, f := range fields {
			if d := f.get(&g); d > r.o.Margins.of(i) {
				fails = append(fails, fmt.Sprintf("%s: %s grew steadily under constant load: trend +%s over the load after the warm-up, over the margin of %s",
					r.o.Metrics[t], f.name, f.unit(d), f.unit(r.o.Margins.of(i))))
			}
		}
	}
	l := res.Load
	steps := l.Enters + l.Hops + l.Chats + l.Errors
	switch {
	case l.Connections == 0:
		fails = append(fails, "no client got connected: "+l.LastError)
	case l.Errors*100 > steps:
		fails = append(fails, fmt.Sprintf("clients failed %d of %d steps (over 1%%); last: %s", l.Errors, steps, l.LastError))
	}
	res.Failures = fails
}

func hasPhase(samples []Sample, target int, phase string) bool {
	for _, s := range samples {
		if s.Target == target && s.Phase == phase {
			return true
		}
	}
	return false
}
