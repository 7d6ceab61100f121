// Package gate is an A/B performance regression gate: it runs a baseline and
// a candidate chatbench binary interleaved (A B A B ...) on one machine, each
// run a `chatbench bench` child process that starts its own server, and
// compares the runs' deliveries/s and delivery p50/p99 with the Mann-Whitney
// U test and confidence intervals of the medians (golang.org/x/perf/benchmath,
// as benchstat). A run that could not run, or was driver-bound, is no
// measurement. The verdict (pass, regression, inconclusive) comes as a text
// table, as gate.json and as a plot of every run's value per version.
package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/internal/proc"
)

// SchemaV2 is the schema of gate.json (docs/results.md). Additive changes
// keep the major version. v2: a pass needs the interval of the change
// within the tolerance (worse_lo, worse_hi); max_spread is gone.
const SchemaV2 = "chatbench.gate/v2"

// Version is one side of the comparison: a git ref built into a temporary
// worktree, or a binary given as it is.
type Version struct {
	Ref    string // git ref (branch, tag, commit, HEAD~1); or
	Binary string // path of a chatbench binary
	// BenchArgs are extra `chatbench bench` flags for this version's runs
	// only (e.g. --serve-flag=... to compare two server settings).
	BenchArgs []string
}

// Options configure Run. Zero values mean the documented defaults.
type Options struct {
	Baseline, Candidate Version
	// Repo is the git repository refs are resolved in (default ".").
	Repo string
	// Scenario is the scenario file both versions run (YAML, as written to
	// the results directory): the gate resolves a shipped name itself, so
	// an older version that does not ship the scenario can still run it.
	Scenario     []byte
	ScenarioName string
	// Runs is how many times each version runs (default 8), interleaved.
	Runs int
	// MaxRuns (default 2 x Runs) and MoreRuns (default Runs/2): while the
	// verdict is inconclusive, MoreRuns more runs of each, up to MaxRuns.
	// MaxRuns = Runs never runs more.
	MaxRuns, MoreRuns int
	// BenchArgs are extra `chatbench bench` flags for every run.
	BenchArgs []string
	// Retries is how many times a run that was no measurement (driver-bound,
	// clients that did not stay connected, a failed child) is run again
	// before its slot stays empty (default 2; negative: never). Every
	// attempt is kept in the results.
	Retries int
	// MaxErrorRate is the largest error rate (errors/requests) of a run
	// that counts as a measurement (default 0.05): a run many of whose
	// clients did not connect and enter drove a different load.
	MaxErrorRate float64
	// RunTimeout bounds one run (default 3 minutes).
	RunTimeout time.Duration
	// Out is the results directory (gate.json, gate.txt, gate.png, runs/).
	Out     string
	Metrics []Metric // default DefaultMetrics()
	Stats   Stats
	// Command is the command line, recorded in gate.json and on the plot.
	Command string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Side describes one version in the results.
type Side struct {
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"` // the ref's commit, or the binary's commit as its runs report it
	Binary string `json:"binary"`
	// BenchArgs are the version's own extra bench flags.
	BenchArgs []string `json:"bench_args,omitempty"`
}

// Run is one child run.
type Run struct {
	Index   int    `json:"index"`   // 1-based position in the interleaved order
	Version string `json:"version"` // baseline or candidate
	// Retry counts the attempts before this one in the same slot (0: the
	// first): a run that was no measurement is run again (Options.Retries).
	Retry int `json:"retry,omitempty"`
	// Measured is false for a run that is no measurement; Excluded says why
	// (driver-bound, exit code, no summary).
	Measured bool               `json:"measured"`
	Excluded string             `json:"excluded,omitempty"`
	Values   map[string]float64 `json:"values,omitempty"` // metric name -> value
	Dir      string             `json:"dir,omitempty"`    // the run's results directory
	ExitCode int                `json:"exit_code"`
	Seconds  float64            `json:"seconds"`
	LoadAvg  string             `json:"load_avg,omitempty"` // before the run
	Commit   string             `json:"commit,omitempty"`
	// DriverCPUPercent and Errors are from the run's summary.
	DriverCPUPercent float64 `json:"driver_cpu_percent,omitempty"`
	Errors           int64   `json:"errors,omitempty"`
}

// Result is gate.json.
type Result struct {
	Schema      string          `json:"schema"`
	Verdict     Verdict         `json:"verdict"`
	ExitCode    int             `json:"exit_code"`
	Scenario    string          `json:"scenario"`
	RunsEach    int             `json:"runs_each"` // runs of each version made
	MaxRuns     int             `json:"max_runs"`  // the most it would have made
	Baseline    Side            `json:"baseline"`
	Candidate   Side            `json:"candidate"`
	BenchArgs   []string        `json:"bench_args,omitempty"`
	Comparisons []Comparison    `json:"comparisons"`
	Runs        []Run           `json:"runs"`
	Machine     metrics.Machine `json:"machine"`
	Command     string          `json:"command,omitempty"`
	Start       time.Time       `json:"start"`
	End         time.Time       `json:"end"`
}

// Versions' names in results, in run order.
const (
	BaselineName  = "baseline"
	CandidateName = "candidate"
)

func (o *Options) withDefaults() error {
	if o.Repo == "" {
		o.Repo = "."
	}
	if o.Runs == 0 {
		o.Runs = 8
	}
	if o.MaxRuns == 0 {
		o.MaxRuns = 2 * o.Runs
	}
	if o.MoreRuns == 0 {
		o.MoreRuns = max(1, o.Runs/2)
	}
	if o.RunTimeout == 0 {
		o.RunTimeout = 3 * time.Minute
	}
	if o.Retries == 0 {
		o.Retries = 2
	}
	if o.MaxErrorRate == 0 {
		o.MaxErrorRate = 0.05
	}
	if o.Metrics == nil {
		o.Metrics = DefaultMetrics()
	}
	o.Stats = o.Stats.withDefaults()
	if o.Log == nil {
		o.Log = io.Discard
	}
	switch {
	case o.Runs < 1:
		return fmt.Errorf("runs %d: at least 1", o.Runs)
	case o.MaxRuns < o.Runs:
		return fmt.Errorf("max runs %d: at least runs (%d)", o.MaxRuns, o.Runs)
	case len(o.Scenario) == 0:
		return errors.New("no scenario")
	case o.Out == "":
		return errors.New("no results directory")
	}
	for _, v := range []struct {
		name string
		v    Version
	}{{BaselineName, o.Baseline}, {CandidateName, o.Candidate}} {
		if (v.v.Ref == "") == (v.v.Binary == "") {
			return fmt.Errorf("%s: give a git ref or a binary (exactly one)", v.name)
		}
	}
	return nil
}

// Execute builds both versions (refs only), runs them interleaved, compares
// them and writes gate.json, gate.txt and gate.png into Out. An error means
// the gate could not run at all; a verdict comes with a nil error.
func Execute(ctx context.Context, o Options) (*Result, error) {
	if err := o.withDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Out, "runs"), 0o755); err != nil {
		return nil, err
	}
	scen, err := filepath.Abs(filepath.Join(o.Out, "scenario.yaml"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(scen, o.Scenario, 0o644); err != nil {
		return nil, err
	}
	res := &Result{Schema: SchemaV2, Scenario: o.ScenarioName, RunsEach: o.Runs, MaxRuns: o.MaxRuns, BenchArgs: o.BenchArgs,
		Machine: metrics.DetectMachine(), Command: o.Command, Start: time.Now().UTC()}
	bins, cleanup, err := build(ctx, o, res)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	args := [2][]string{o.Baseline.BenchArgs, o.Candidate.BenchArgs}
	names := [2]string{BaselineName, CandidateName}
	// Runs pairs first; then, while the verdict is inconclusive, MoreRuns
	// pairs at a time up to MaxRuns: a noisy machine gets more samples
	// before the gate gives up. The pairs alternate their order (baseline
	// first, then candidate first: A B B A A B ...), so whatever one run
	// leaves behind for the next (sockets in TIME_WAIT, freed memory, a
	// busier moment) falls on both versions alike, not always on the
	// second.
	pairs := 0
	runPairs := func(n int) error {
		for range n {
			for k := range 2 {
				v := k ^ (pairs & 1)
				// a run that was no measurement is run again (bounded):
				// a moment of a busy machine should not cost the slot
				for try := 0; try <= max(0, o.Retries); try++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					r := runOnce(ctx, o, len(res.Runs)+1, names[v], bins[v], scen, args[v])
					r.Retry = try
					fmt.Fprintf(o.Log, "chatbench gate: run %d (pair %d of %d) %s: %s\n", r.Index, pairs+1, max(o.Runs, pairs+1), names[v], describeRun(r))
					res.Runs = append(res.Runs, r)
					if r.Measured {
						break
					}
				}
			}
			pairs++
		}
		res.RunsEach = pairs
		res.Comparisons = CompareRuns(res.Runs, o.Metrics, o.Stats)
		res.Verdict = Overall(res.Comparisons)
		return nil
	}
	if err := runPairs(o.Runs); err != nil {
		return nil, err
	}
	for res.Verdict == Inconclusive && pairs < o.MaxRuns {
		n := min(o.MoreRuns, o.MaxRuns-pairs)
		fmt.Fprintf(o.Log, "chatbench gate: inconclusive after %d runs each: %d more each (up to %d)\n", pairs, n, o.MaxRuns)
		if err := runPairs(n); err != nil {
			return nil, err
		}
	}
	for _, sd := range []*Side{&res.Baseline, &res.Candidate} {
		if sd.Commit == "" {
			sd.Commit = runsCommit(res.Runs, sideName(res, sd))
		}
	}
	res.ExitCode = res.Verdict.ExitCode()
	res.End = time.Now().UTC()
	return res, Write(o.Out, res)
}

func sideName(res *Result, sd *Side) string {
	if sd == &res.Baseline {
		return BaselineName
	}
	return CandidateName
}

// runsCommit is the commit a version's runs report, when they agree.
func runsCommit(runs []Run, version string) string {
	c := ""
	for _, r := range runs {
		if r.Version != version || r.Commit == "" {
			continue
		}
		if c != "" && c != r.Commit {
			return "mixed"
		}
		c = r.Commit
	}
	return c
}

// CompareRuns compares every metric over the measured runs. Each metric is
// tested at Alpha divided by the number of metrics (Bonferroni), so the
// chance that a version compared with itself fails any metric by chance is
// at most Alpha.
func CompareRuns(runs []Run, ms []Metric, st Stats) []Comparison {
	st = st.withDefaults()
	st.Alpha /= float64(max(1, len(ms)))
	var out []Comparison
	for _, m := range ms {
		var base, cand []float64
		for _, r := range runs {
			v, ok := r.Values[m.Name]
			if !r.Measured || !ok {
				continue
			}
			if r.Version == BaselineName {
				base = append(base, v)
			} else {
				cand = append(cand, v)
			}
		}
		out = append(out, Compare(m, base, cand, st))
	}
	return out
}

func describeRun(r Run) string {
	if !r.Measured {
		return fmt.Sprintf("no measurement (%s)", r.Excluded)
	}
	return fmt.Sprintf("%.0f deliveries/s, p50 %.1f ms, p99 %.1f ms, server %.3f us/delivery (%.0fs, load %s)",
		r.Values["deliveries_per_s"], r.Values["delivery_p50_ms"], r.Values["delivery_p99_ms"], r.Values["server_cpu_us_per_delivery"], r.Seconds, r.LoadAvg)
}

// runOnce runs `bin bench` once and reads its summary.
func runOnce(ctx context.Context, o Options, idx int, version, bin, scen string, extra []string) Run {
	r := Run{Index: idx, Version: version, LoadAvg: metrics.LoadAvg()}
	dir := filepath.Join(o.Out, "runs", fmt.Sprintf("%02d-%s", idx, version))
	argv := append([]string{"bench", "--quiet", "--scenario", scen, "--out", dir, "--ceiling", "off"}, o.BenchArgs...)
	argv = append(argv, extra...)
	logf, err := os.Create(dir + ".log")
	if err != nil {
		r.Excluded = err.Error()
		return r
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s %s\n", bin, strings.Join(argv, " "))
	rctx, cancel := context.WithTimeout(ctx, o.RunTimeout)
	defer cancel()
	t0 := time.Now()
	// the bench child stops the server it started when it gets SIGTERM:
	// at the timeout, and from the kernel if the gate dies (Linux)
	p, runErr := proc.Run(rctx, proc.Options{
		Role: "bench", Path: bin, Args: argv, Log: logf, NoPrefix: true,
		StopTimeout: 20 * time.Second, ParentDeathSignal: syscall.SIGTERM,
	})
	if p == nil {
		r.Excluded = runErr.Error()
		return r
	}
	r.Seconds = time.Since(t0).Seconds()
	r.ExitCode = p.ExitCode()
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "summary.json"))
	switch {
	case rctx.Err() == context.DeadlineExceeded:
		r.Excluded = fmt.Sprintf("did not finish within %v", o.RunTimeout)
		return r
	case r.ExitCode != 0 && r.ExitCode != 99: // 99: the scenario's thresholds failed, the run ran
		r.Excluded = fmt.Sprintf("bench exited %d (%v): see %s.log", r.ExitCode, runErr, dir)
		return r
	case len(matches) == 0:
		r.Excluded = "no summary.json"
		return r
	}
	r.Dir = filepath.Dir(matches[len(matches)-1])
	sum, err := metrics.ReadSummary(matches[len(matches)-1])
	if err != nil {
		r.Excluded = err.Error()
		return r
	}
	r.Commit, r.DriverCPUPercent, r.Errors = sum.Commit, sum.Driver.CPUPercent, sum.Counters.Errors
	r.Values = Values(sum)
	if r.Values == nil {
		r.Excluded = "no deliveries"
		return r
	}
	if sum.Driver.DriverBound {
		r.Excluded = "driver-bound: " + sum.Driver.DriverBoundWhy
		return r
	}
	if er := sum.ErrorRate(); er > o.MaxErrorRate {
		r.Excluded = fmt.Sprintf("error rate %.2f%% > %.2f%%: not every client connected and entered", 100*er, 100*o.MaxErrorRate)
		return r
	}
	r.Measured = true
	return r
}

// Values are a run's metrics as the gate compares them: deliveries/s over
// the message phases' active windows (calibrate.Rate: a storm's from its
// first send to its last delivery, so a slower server shows as a lower
// rate), the delivery p50 and p99, and the server's CPU microseconds per
// delivery, all of it and its user part, when the summary has them (a
// server bench started). Nil for a run with no deliveries.
func Values(sum *metrics.Summary) map[string]float64 {
	d, ok := sum.Ops["delivery"]
	if !ok || d.Count == 0 {
		return nil
	}
	v := map[string]float64{
		"deliveries_per_s": calibrate.Rate(sum),
		"delivery_p50_ms":  float64(d.P50Us) / 1000,
		"delivery_p99_ms":  float64(d.P99Us) / 1000,
	}
	if cpu := sum.ServerCPUSeconds(); cpu > 0 {
		v["server_cpu_us_per_delivery"] = cpu * 1e6 / float64(d.Count)
	}
	if user := sum.ServerUserSeconds(); user > 0 {
		v["server_user_us_per_delivery"] = user * 1e6 / float64(d.Count)
	}
	return v
}
