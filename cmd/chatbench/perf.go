package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
)

func init() {
	register("perf", "measure the performance targets (issue 6) and print the target table (make perf)", runPerf)
}

// The targets of issue 6.
const (
	perfStormRatio  = 0.70 // single-process storm / calibrated ceiling
	perfSplitRatio  = 0.50 // split 2x2 / single on the same scenario
	perfP99         = 25 * time.Millisecond
	perfLatencyRate = 90_000   // deliveries/s the latency run must reach (100k nominal)
	perfIdleBytes   = 10 << 10 // driver bytes per idle client at 10,000 clients
	perfMaxClients  = 19_000   // clients in one driver process
	perfIdleClients = 10_000
)

// Scenarios of the perf runs that the shipped files do not cover: idle
// clients only (memory per client, clients per process), entering fast in
// small rooms so that the onAdd fan-out stays small.
const perfIdleYAML = `name: %s
description: perf (issue 6) - %d idle clients in rooms of 10, entering at 1,000/s, then idle.
seed: 1
clients: %d
rooms:
  count: %d
phases:
  - name: enter
    kind: enter
    arrival_rate: 1000
    duration: 90s
  - name: idle
    kind: idle
    duration: 2s
thresholds:
  error_rate_max: 0
`

type perfRow struct {
	name, measured, ratio, target, met string
}

type perfRun struct {
	ctx    context.Context
	exe    string
	out    string
	log    io.Writer
	rows   []perfRow
	recal  bool
	single map[string]*metrics.Summary
	// latencyRuns is how many times the latency target is measured: one
	// run's p99 moves by a fifth from run to run on a shared 2-core machine.
	latencyRuns int
}

func runPerf(ctx context.Context, args []string) error {
	fs := newFlags("perf")
	var out, only string
	var recal bool
	var latencyRuns int
	fs.StringVar(&out, "out", "", "results of the perf runs (default results/perf-<time>)")
	fs.StringVar(&only, "only", "storm,split,latency,memory,clients,bound", "which targets to measure (comma-separated)")
	fs.BoolVar(&recal, "recalibrate", false, "measure the ceilings again instead of using the cached ones")
	fs.IntVar(&latencyRuns, "latency-runs", 3, "runs of the latency target; the row gives the run with the median p99 and the range")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if latencyRuns < 1 || latencyRuns > 20 {
		return usageErr("--latency-runs %d: use 1 to 20", latencyRuns)
	}
	if out == "" {
		out = filepath.Join("results", "perf-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(out, "perf.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// every run shares one calibration cache, not one per run directory
	if os.Getenv(calibrationEnv) == "" {
		os.Setenv(calibrationEnv, calibrationDirFor("results"))
	}
	p := &perfRun{ctx: ctx, exe: exe, out: out, log: logf, recal: recal, single: map[string]*metrics.Summary{}, latencyRuns: latencyRuns}
	load0 := loadavg()
	start := time.Now()
	want := map[string]bool{}
	for _, w := range strings.Split(only, ",") {
		want[strings.TrimSpace(w)] = true
	}
	steps := []struct {
		key string
		fn  func() error
	}{
		{"storm", p.storm}, {"split", p.split}, {"latency", p.latency},
		{"memory", p.memory}, {"clients", p.clients}, {"bound", p.bound},
	}
	for _, st := range steps {
		if !want[st.key] || ctx.Err() != nil {
			continue
		}
		if err := st.fn(); err != nil {
			fmt.Fprintf(os.Stderr, "chatbench perf: %s: %v\n", st.key, err)
			p.rows = append(p.rows, perfRow{name: st.key, measured: "error: " + err.Error(), ratio: "-", target: "-", met: "NO"})
		}
	}
	fmt.Printf("\nchatbench perf: %s, load average before %s, after %s (%s)\n", metrics.DetectMachine().CPUModel, load0, loadavg(), time.Since(start).Round(time.Second))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmeasured\tratio\ttarget\tmet\t")
	for _, r := range p.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.name, r.measured, r.ratio, r.target, r.met)
	}
	tw.Flush()
	fmt.Printf("runs and logs: %s\n", out)
	return ctx.Err()
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// bench runs `chatbench bench` in a child process and reads its summary.
func (p *perfRun) bench(name string, args ...string) (*metrics.Summary, error) {
	dir := filepath.Join(p.out, name)
	argv := append([]string{"bench", "--quiet", "--out", dir}, args...)
	fmt.Fprintf(os.Stderr, "chatbench perf: %s: chatbench %s\n", name, strings.Join(argv, " "))
	fmt.Fprintf(p.log, "\n== %s: chatbench %s (load %s)\n", name, strings.Join(argv, " "), loadavg())
	cmd := exec.CommandContext(p.ctx, p.exe, argv...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	runErr := cmd.Run()
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "summary.json"))
	if len(matches) == 0 {
		if runErr == nil {
			runErr = errors.New("no summary.json")
		}
		return nil, fmt.Errorf("%s: %w (see %s)", name, runErr, filepath.Join(p.out, "perf.log"))
	}
	sum, err := metrics.ReadSummary(matches[len(matches)-1])
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "chatbench perf: %s: %.0f deliveries/s, p99 %s, lost %d, errors %d, driver-bound %v\n",
		name, calibrate.Rate(sum), usText(sum.Ops["delivery"].P99Us), sum.Counters.Lost, sum.Counters.Errors, sum.Driver.DriverBound)
	return sum, nil
}

func usText(us int64) string {
	switch {
	case us >= 1_000_000:
		return fmt.Sprintf("%.2f s", float64(us)/1e6)
	case us >= 1000:
		return fmt.Sprintf("%.1f ms", float64(us)/1e3)
	}
	return fmt.Sprintf("%d us", us)
}

func (p *perfRun) ceilingFlag() string {
	if p.recal {
		return "recalibrate"
	}
	return "auto"
}

// Deliveries/s of storms are compared over their active windows (first send
// to last delivery: calibrate.Rate), since a storm phase lasts its declared
// duration however fast the server drains it.
//
// The storm shapes: the shipped one (its bursts every 3 s are all delivered
// well within the phase by a good server, so deliveries/s is the offered
// load) and an overload one (5,000 clients in rooms of 100, bursts every
// 1/3 s: 1.5 M deliveries offered in under a second) where deliveries/s is
// the server's throughput.
var perfStorms = []struct {
	name string
	args []string
}{
	{"storm-default", []string{"--scenario", "broadcast-storm"}},
	{"storm-overload", []string{"--scenario", "broadcast-storm", "--clients", "5000", "--duration", "1s"}},
}

func (p *perfRun) storm() error {
	for _, st := range perfStorms {
		sum, err := p.bench("single-"+st.name, append(st.args, "--ceiling", p.ceilingFlag())...)
		if err != nil {
			return err
		}
		p.single[st.name] = sum
		if st.name == "storm-default" {
			p.single["broadcast-storm"] = sum
		}
		p.rows = append(p.rows, stormRow(st.name, sum))
	}
	return nil
}

// A driver-bound run measured the driver as much as the server: its
// deliveries/s is a lower bound of the server's. So a driver-bound run can
// still meet an at-least target as the numerator of a ratio (the true ratio
// is higher), never as the denominator, and the row says so either way.
const (
	boundLower = "; driver-bound: a lower bound"
	boundRerun = "NO (driver-bound single run as the reference: measure again)"
)

// stormRow judges a single-process storm against this machine's ceiling.
func stormRow(name string, sum *metrics.Summary) perfRow {
	row := perfRow{name: "single " + name + " vs ceiling", target: fmt.Sprintf(">= %.2f, 0 lost", perfStormRatio)}
	row.measured = fmt.Sprintf("%s/s, lost %d", count(calibrate.Rate(sum)), sum.Counters.Lost)
	c := sum.Ceiling
	if c == nil {
		row.ratio, row.met = "-", "NO (no ceiling)"
		return row
	}
	row.measured += fmt.Sprintf(" (ceiling %s/s)", count(c.DeliveriesPerSec))
	if sum.Driver.DriverBound {
		row.measured += boundLower
	}
	row.ratio = fmt.Sprintf("%.2f", c.Ratio)
	row.met = yes(c.Ratio >= perfStormRatio && sum.Counters.Lost == 0)
	return row
}

// splitRow judges a split-topology storm against the single-process one.
func splitRow(name string, split, single *metrics.Summary) perfRow {
	row := perfRow{name: "split 2x2 " + name + " vs single", target: fmt.Sprintf(">= %.2f", perfSplitRatio)}
	r := calibrate.Rate(split) / calibrate.Rate(single)
	row.measured = fmt.Sprintf("%s/s vs %s/s, lost %d", count(calibrate.Rate(split)), count(calibrate.Rate(single)), split.Counters.Lost)
	if split.Driver.DriverBound {
		row.measured += "; split run driver-bound: a lower bound"
	}
	row.ratio = fmt.Sprintf("%.2f", r)
	row.met = yes(r >= perfSplitRatio)
	if single.Driver.DriverBound {
		row.measured += "; single run driver-bound"
		row.met = boundRerun
	}
	return row
}

func (p *perfRun) split() error {
	for _, st := range perfStorms {
		single := p.single[st.name]
		if single == nil {
			var err error
			if single, err = p.bench("single-"+st.name, append(st.args, "--ceiling", "off")...); err != nil {
				return err
			}
			p.single[st.name] = single
		}
		sum, err := p.bench("split-"+st.name, append(st.args, "--topology", "split", "--connectors", "2", "--shards", "2", "--ceiling", "off")...)
		if err != nil {
			p.rows = append(p.rows, perfRow{name: "split 2x2 " + st.name + " vs single", target: fmt.Sprintf(">= %.2f", perfSplitRatio),
				measured: "not measured: " + err.Error(), ratio: "-", met: "NO"})
			continue
		}
		p.rows = append(p.rows, splitRow(st.name, sum, single))
	}
	return nil
}

func (p *perfRun) latency() error {
	var sums []*metrics.Summary
	for i := range p.latencyRuns {
		name := "latency"
		if p.latencyRuns > 1 {
			name = fmt.Sprintf("latency-%d", i+1)
		}
		sum, err := p.bench(name, "--scenario", "latency", "--ceiling", "off")
		if err != nil {
			return err
		}
		sums = append(sums, sum)
	}
	row, median := latencyRow(sums)
	p.rows = append(p.rows, row)
	p.single["latency"] = median
	return nil
}

// latencyRow judges the latency target on the run with the median p99 (of
// an even count, the higher of the two middle runs) and gives the range of
// all runs; a driver-bound run or one below the rate fails it.
func latencyRow(sums []*metrics.Summary) (perfRow, *metrics.Summary) {
	byP99 := slices.Clone(sums)
	slices.SortStableFunc(byP99, func(a, b *metrics.Summary) int {
		return cmp.Compare(a.Ops["delivery"].P99Us, b.Ops["delivery"].P99Us)
	})
	sum := byP99[len(byP99)/2]
	d := sum.Ops["delivery"]
	p99 := time.Duration(d.P99Us) * time.Microsecond
	row := perfRow{name: "p99 delivery at 100k deliveries/s (latency)", target: fmt.Sprintf("<= %v at >= %s/s, 0 lost", perfP99, count(perfLatencyRate))}
	row.measured = fmt.Sprintf("p99 %s (p50 %s, p99.9 %s) at %s/s, lost %d", usText(d.P99Us), usText(d.P50Us), usText(d.P999Us), count(sum.DeliveriesPerSec), sum.Counters.Lost)
	if n := len(sums); n > 1 {
		row.measured += fmt.Sprintf("; median of %d runs, p99 %s to %s", n, usText(byP99[0].Ops["delivery"].P99Us), usText(byP99[n-1].Ops["delivery"].P99Us))
	}
	ok := p99 <= perfP99
	bound := 0
	for _, s := range sums {
		if s.Driver.DriverBound {
			bound++
		}
		ok = ok && s.DeliveriesPerSec >= perfLatencyRate && s.Counters.Lost == 0
	}
	if bound > 0 {
		row.measured += fmt.Sprintf(" DRIVER-BOUND (%d of %d runs)", bound, len(sums))
	}
	row.ratio = fmt.Sprintf("%.2f", float64(p99)/float64(perfP99))
	row.met = yes(ok && bound == 0)
	return row, sum
}

func (p *perfRun) idleScenario(clients int) (string, error) {
	name := fmt.Sprintf("perf-idle-%d", clients)
	path := filepath.Join(p.out, name+".yaml")
	err := os.WriteFile(path, fmt.Appendf(nil, perfIdleYAML, name, clients, clients, max(1, clients/10)), 0o644)
	return path, err
}

func (p *perfRun) memory() error {
	path, err := p.idleScenario(perfIdleClients)
	if err != nil {
		return err
	}
	sum, err := p.bench("memory-10k", "--scenario", path, "--ceiling", "off")
	if err != nil {
		return err
	}
	b := sum.Driver.MemoryPerClientB
	p.rows = append(p.rows, perfRow{
		name:     fmt.Sprintf("driver bytes per idle client at %s", count(perfIdleClients)),
		measured: fmt.Sprintf("%s B (%.1f KiB), errors %d", count(float64(b)), float64(b)/1024, sum.Counters.Errors),
		ratio:    fmt.Sprintf("%.2f", float64(b)/perfIdleBytes), target: "<= 10 KiB",
		met: yes(b > 0 && b <= perfIdleBytes && sum.Counters.Errors == 0),
	})
	return nil
}

func (p *perfRun) clients() error {
	path, err := p.idleScenario(perfMaxClients)
	if err != nil {
		return err
	}
	sum, err := p.bench("clients-19k", "--scenario", path, "--source-addrs", "2", "--ceiling", "off")
	if err != nil {
		return err
	}
	peak := int64(0)
	for _, s := range sum.Series {
		peak = max(peak, s.Connected)
	}
	p.rows = append(p.rows, perfRow{
		name:     "clients in one driver process",
		measured: fmt.Sprintf("%s connected (2 source addresses), errors %d, %s B/client", count(float64(peak)), sum.Counters.Errors, count(float64(sum.Driver.MemoryPerClientB))),
		ratio:    fmt.Sprintf("%.2f", float64(peak)/perfMaxClients), target: ">= 19,000, 0 errors",
		met: yes(peak >= perfMaxClients && sum.Counters.Errors == 0),
	})
	return nil
}

func (p *perfRun) bound() error {
	var bound []string
	n := 0
	for _, name := range scenario.Names() {
		sum := p.single[name]
		if sum == nil {
			var err error
			if sum, err = p.bench("bound-"+name, "--scenario", name, "--ceiling", "off"); err != nil {
				bound = append(bound, name+" (error)")
				continue
			}
		}
		n++
		if sum.Driver.DriverBound {
			bound = append(bound, name+": "+sum.Driver.DriverBoundWhy)
		}
	}
	row := perfRow{name: "driver-bound on shipped scenarios (default sizes)", target: "never"}
	row.measured = fmt.Sprintf("%d of %d runs driver-bound", len(bound), n)
	if len(bound) > 0 {
		row.measured += ": " + strings.Join(bound, "; ")
	}
	row.ratio = "-"
	row.met = yes(len(bound) == 0)
	p.rows = append(p.rows, row)
	return nil
}
