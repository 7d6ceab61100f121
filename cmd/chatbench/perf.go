package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/perf"
)

func init() {
	register("perf", "measure the performance targets and print the target table; exits 1 when a target is not met (make perf)", runPerf)
}

func runPerf(ctx context.Context, args []string) error {
	fs := newFlags("perf")
	var out, only string
	var o perf.Options
	fs.StringVar(&out, "out", "", "results of the perf runs (default results/perf-<time>)")
	fs.StringVar(&only, "only", strings.Join(perf.Keys, ","), "which targets to measure (comma-separated)")
	fs.BoolVar(&o.Recalibrate, "recalibrate", false, "measure the storm ceilings again instead of using the cached ones")
	fs.IntVar(&o.LatencyRuns, "latency-runs", 3, "runs of ours and of the bare server at 100k deliveries/s, interleaved; each judged on its median p99")
	fs.IntVar(&o.SearchSteps, "search-steps", 3, "bisection steps of the search for the bare server's highest rate within 25 ms")
	fs.IntVar(&o.Retries, "retries", 2, "measure a driver-bound run of the split, latency and search targets again up to this many times (0: never)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Retries < 0 || o.Retries > 5 {
		return usageErr("--retries %d: use 0 to 5", o.Retries)
	}
	if o.Retries == 0 {
		o.Retries = -1 // perf.Options: negative is never
	}
	if o.LatencyRuns < 1 || o.LatencyRuns > 20 {
		return usageErr("--latency-runs %d: use 1 to 20", o.LatencyRuns)
	}
	if o.SearchSteps < 1 || o.SearchSteps > 10 {
		return usageErr("--search-steps %d: use 1 to 10", o.SearchSteps)
	}
	for _, k := range strings.Split(only, ",") {
		o.Only = append(o.Only, strings.TrimSpace(k))
	}
	if err := perf.CheckOnly(o.Only); err != nil {
		return usageErr("--only %s: %v", only, err)
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
		o.Env = append(o.Env, calibrationEnv+"="+calibrationDirFor("results"))
	}
	o.Exe, o.Out, o.Log, o.Progress = exe, out, logf, os.Stderr
	o.StartBare = func(ctx context.Context) (string, func(), error) {
		b, err := startBare(ctx, defaultServerNice) // calibrate.go
		if err != nil {
			return "", nil, err
		}
		return b.addr, b.stop, nil
	}
	load0, start := metrics.LoadAvg(), time.Now()
	rows, err := perf.Run(ctx, o)
	fmt.Printf("\n%s: %s, %s, load average before %s, after %s (%s)\n", strings.TrimSpace("chatbench perf "+strings.Join(args, " ")),
		metrics.DetectMachine().CPUModel, start.UTC().Format("2006-01-02 15:04 MST"), load0, metrics.LoadAvg(), time.Since(start).Round(time.Second))
	if terr := perf.Table(os.Stdout, rows); terr != nil {
		return terr
	}
	fmt.Printf("runs and logs: %s\n", out)
	if err != nil {
		return err
	}
	if !perf.AllMet(rows) {
		return &exitError{code: 1, err: errors.New("a target was not met (see the met column)")}
	}
	return nil
}
