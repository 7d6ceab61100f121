package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/gate"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/scenarios"
)

func init() {
	register("gate", "A/B performance regression gate: two versions run interleaved, compared with statistics", runGate)
}

const gateExitCodes = `
Exit codes:
  0   pass: the server's CPU per delivery is shown (90% interval of the
      change) to be no worse than its tolerance, and no metric regressed
  1   regression: a metric got significantly worse, its whole interval
      beyond its tolerance
  2   usage error (bad flag or scenario)
  3   inconclusive: too few measured runs, or an interval too wide to tell
  4   the gate could not run (a ref that does not build, no git, ...)
`

func runGate(ctx context.Context, args []string) error {
	fs := newFlags("gate")
	var base, cand gate.Version
	var o gate.Options
	var scen, out string
	var tol map[string]string
	var serverProcs, pollers int
	fs.StringVar(&base.Ref, "baseline", "", "git ref of the baseline (built in a temporary worktree)")
	fs.StringVar(&cand.Ref, "candidate", "", "git ref of the candidate (built in a temporary worktree)")
	fs.StringVar(&base.Binary, "baseline-binary", "", "a chatbench binary as the baseline (instead of --baseline)")
	fs.StringVar(&cand.Binary, "candidate-binary", "", "a chatbench binary as the candidate (instead of --candidate)")
	fs.StringVar(&scen, "scenario", "gate", "shipped scenario name ("+strings.Join(scenario.Names(), ", ")+") or path of a YAML file; both versions run this gate's copy of it")
	fs.IntVar(&o.Runs, "runs", 8, "runs of each version, interleaved in pairs of alternating order (baseline, candidate, candidate, baseline, ...)")
	fs.IntVar(&o.MaxRuns, "max-runs", 0, "while the verdict is inconclusive, run more (half of --runs at a time) up to this many of each (default 2 x --runs; = --runs: never more)")
	fs.IntVar(&o.Stats.MinRuns, "min-runs", 6, "measured runs each version needs for a verdict (fewer: inconclusive)")
	fs.Float64Var(&o.Stats.Alpha, "alpha", 0.01, "significance level of the Mann-Whitney U test for a regression (split over the metrics)")
	fs.StringToStringVar(&tol, "tolerance", nil, "largest change for the worse that passes, per metric: deliveries_per_s=0.1,delivery_p50_ms=0.25,delivery_p99_ms=0.25,server_cpu_us_per_delivery=0.1 (the defaults)")
	fs.StringArrayVar(&o.BenchArgs, "bench-flag", nil, "pass this flag to every chatbench bench run, e.g. --bench-flag=--clients=400 (repeatable)")
	fs.StringArrayVar(&base.BenchArgs, "baseline-bench-flag", nil, "a bench flag for the baseline's runs only, e.g. --baseline-bench-flag=--serve-flag=--coalesce-max=-1ns (repeatable)")
	fs.StringArrayVar(&cand.BenchArgs, "candidate-bench-flag", nil, "a bench flag for the candidate's runs only (repeatable)")
	fs.IntVar(&serverProcs, "server-procs", 0, "CPUs each run's server may use (serve --gomaxprocs; 0: all, the default: the gate scenario keeps the server under capacity, and one CPU would leave it none to spare)")
	fs.IntVar(&pollers, "driver-pollers", 1, "epoll receive loops of each run's driver (bench --pollers): 1 leaves the driver's other P to its timers and senders, so a busy receive loop does not make the run driver-bound (0: bench's default)")
	fs.IntVar(&o.Retries, "retries", 2, "run a run that was no measurement (driver-bound, clients that did not stay connected) again up to this many times (0: never)")
	fs.StringVar(&o.Repo, "repo", ".", "git repository the refs are in")
	fs.DurationVar(&o.RunTimeout, "run-timeout", 3*time.Minute, "longest one run may take; a run over it is no measurement")
	fs.StringVar(&out, "out", "", "results directory (default results/gate-<time>)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench gate --baseline REF|--baseline-binary BIN --candidate REF|--candidate-binary BIN [flags]\n\nflags:\n%s%s", fs.FlagUsages(), gateExitCodes)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, v := range []struct {
		flag string
		v    gate.Version
	}{{"--baseline", base}, {"--candidate", cand}} {
		if (v.v.Ref == "") == (v.v.Binary == "") {
			return usageErr("give %s REF or %s-binary PATH (exactly one)", v.flag, v.flag)
		}
	}
	if o.Runs < 1 || o.Runs > 100 {
		return usageErr("--runs %d: use 1 to 100", o.Runs)
	}
	if o.MaxRuns == 0 {
		o.MaxRuns = 2 * o.Runs
	}
	if o.MaxRuns < o.Runs || o.MaxRuns > 200 {
		return usageErr("--max-runs %d: use --runs (%d) to 200", o.MaxRuns, o.Runs)
	}
	if o.Stats.MinRuns < 2 || o.Stats.MinRuns > o.Runs {
		return usageErr("--min-runs %d: use 2 to --runs (%d); 6 gives a 95%% interval of a median", o.Stats.MinRuns, o.Runs)
	}
	if o.Stats.Alpha <= 0 || o.Stats.Alpha >= 1 {
		return usageErr("--alpha %g: use a level between 0 and 1, e.g. 0.05", o.Stats.Alpha)
	}
	if o.RunTimeout <= 0 {
		return usageErr("--run-timeout %v: must be > 0", o.RunTimeout)
	}
	if serverProcs < 0 {
		return usageErr("--server-procs %d: use 0 (all CPUs) or a count of CPUs", serverProcs)
	}
	if pollers < 0 {
		return usageErr("--driver-pollers %d: use 0 (bench's default) or a count of receive loops", pollers)
	}
	if o.Retries < 0 || o.Retries > 10 {
		return usageErr("--retries %d: use 0 to 10", o.Retries)
	}
	if o.Retries == 0 {
		o.Retries = -1 // gate.Options: negative is never
	}
	if pollers > 0 {
		o.BenchArgs = append([]string{fmt.Sprintf("--pollers=%d", pollers)}, o.BenchArgs...)
	}
	if serverProcs > 0 {
		o.BenchArgs = append([]string{fmt.Sprintf("--serve-flag=--gomaxprocs=%d", serverProcs)}, o.BenchArgs...)
	}
	o.Metrics = gate.DefaultMetrics()
	for name, v := range tol {
		i := -1
		for j, m := range o.Metrics {
			if m.Name == name {
				i = j
			}
		}
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil || f < 0 || f >= 1 || i < 0 {
			return usageErr("--tolerance %s=%s: give metric=fraction with a metric of deliveries_per_s, delivery_p50_ms, delivery_p99_ms, server_cpu_us_per_delivery and a fraction in [0, 1), e.g. deliveries_per_s=0.05", name, v)
		}
		o.Metrics[i].Tolerance = f
	}
	data, source, err := scenarioBytes(scen)
	if err != nil {
		return usageErr("--scenario %s: %v", scen, err)
	}
	s, err := scenario.Parse(source, data)
	if err != nil {
		return usageErr("--scenario %s: %v", scen, err)
	}
	if out == "" {
		out = filepath.Join("results", "gate-"+time.Now().Format("20060102-150405"))
	}
	o.Baseline, o.Candidate, o.Scenario, o.ScenarioName, o.Out = base, cand, data, s.Name, out
	o.Command = "chatbench gate " + strings.Join(args, " ")
	o.Log = os.Stderr
	res, err := gate.Execute(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &exitError{code: gate.ExitError, err: err}
	}
	if err := gate.Text(os.Stdout, res); err != nil {
		return err
	}
	fmt.Printf("results: %s (gate.json, gate.txt, gate.png, runs/)\n", out)
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	return nil
}

// scenarioBytes is the YAML of a shipped scenario or of a file, and its
// name in errors.
func scenarioBytes(nameOrPath string) ([]byte, string, error) {
	if scenario.IsPath(nameOrPath) {
		b, err := os.ReadFile(nameOrPath)
		return b, nameOrPath, err
	}
	b, err := fs.ReadFile(scenarios.FS, nameOrPath+".yaml")
	if err != nil {
		return nil, "", fmt.Errorf("unknown scenario %q (shipped: %s; or give the path of a .yaml file)", nameOrPath, strings.Join(scenario.Names(), ", "))
	}
	return b, "scenarios/" + nameOrPath + ".yaml", nil
}
