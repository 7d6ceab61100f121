package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/sweep"
	"github.com/chatbench/chatbench/reports"
)

func init() {
	register("sweep", "run a scenario over connectors x shards (plus the single baseline, optionally stock pomelo) and render scaling curves", runSweep)
}

func runSweep(ctx context.Context, args []string) error { return sweepCmd(ctx, args, os.Stdout) }

func sweepCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("sweep")
	var (
		bf                 benchFlags
		connectors, shards string
		repeat             int
		pomelo, noSingle   bool
		compare            bool
		runTimeout         time.Duration
		serverNice         int
		ceiling            string
		sourceAddrs        int
	)
	fs.StringVar(&bf.scenario, "scenario", "", "scenario every run drives: a shipped name or a YAML path")
	fs.StringVar(&connectors, "connectors", "1,2", "connector counts of the split (and pomelo) configurations, comma-separated")
	fs.StringVar(&shards, "shards", "1,2", "chat shard counts, comma-separated")
	fs.IntVar(&repeat, "repeat", 2, "rounds; each round runs every configuration once, so machine drift spreads evenly")
	fs.BoolVar(&pomelo, "pomelo", false, "also run stock pomelo at every connectors x shards size (--topology pomelo of bench; node and npm)")
	fs.BoolVar(&noSingle, "no-single", false, "leave out the single-process baseline")
	fs.BoolVar(&compare, "compare", false, "a comparison: single against split at one size (default --connectors 2 --shards 2), and pomelo with --pomelo; writes compare-<time>/")
	fs.StringVar(&bf.out, "out", "results", "results root: the sweep writes <out>/sweep-<time>/ (or compare-<time>/)")
	addScenarioOverrides(fs, &bf, true)
	fs.IntVar(&serverNice, "server-nice", defaultServerNice, "bench --server-nice of every run")
	fs.StringVar(&ceiling, "ceiling", "auto", "bench --ceiling of every run: auto (the machine's cached ceiling, measured once if missing), recalibrate (measured again before every run's comparison) or off")
	fs.IntVar(&sourceAddrs, "source-addrs", 0, "bench --source-addrs of every run")
	fs.DurationVar(&runTimeout, "run-timeout", 10*time.Minute, "longest one run may take; it is then stopped and marked failed")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench sweep --scenario NAME [--connectors 1,2,4] [--shards 1,2,4] [flags]\n\n"+
			"Runs `chatbench bench` (a child process of this binary) for the single-process baseline and every\n"+
			"split connectors x shards size, --repeat rounds interleaved, and writes results/sweep-<time>/:\n"+
			"every run's directory, sweep.json (docs/results.md), the scaling plots and report.html.\n"+
			"A run that fails is marked with its error; the sweep goes on and exits 1 at the end.\n\nflags:\n%s", fs.FlagUsages())
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if compare {
		if !fs.Changed("connectors") {
			connectors = "2"
		}
		if !fs.Changed("shards") {
			shards = "2"
		}
	}
	o := sweep.Options{Pomelo: pomelo, NoSingle: noSingle, Repeat: repeat, Out: bf.out, RunTimeout: runTimeout,
		Commit: commitID(), Command: sweepCommand(args)}
	if compare {
		o.Kind = metrics.SweepKindCompare
	}
	var err error
	if o.Connectors, err = sweep.ParseCounts("--connectors", connectors); err != nil {
		return usageErr("%v", err)
	}
	if o.Shards, err = sweep.ParseCounts("--shards", shards); err != nil {
		return usageErr("%v", err)
	}
	if repeat < 1 {
		return usageErr("--repeat %d: must be >= 1 (rounds of every configuration)", repeat)
	}
	if serverNice < 0 || serverNice > 19 {
		return usageErr("--server-nice %d: use 0 (same priority as the driver) to 19", serverNice)
	}
	if sourceAddrs < 0 || sourceAddrs > 254 {
		return usageErr("--source-addrs %d: must be 1..254 (127.0.0.1..127.0.0.N)", sourceAddrs)
	}
	if runTimeout <= 0 {
		return usageErr("--run-timeout %v: must be > 0", runTimeout)
	}
	switch ceiling {
	case "auto", "off", "recalibrate":
	default:
		return usageErr("--ceiling %q: use auto, recalibrate or off", ceiling)
	}
	s, err := bf.load(fs.Changed("seed")) // names --scenario, --duration, ... at fault
	if err != nil {
		return err
	}
	o.Scenario = bf.scenario
	for _, fl := range []struct {
		name, val string
	}{{"duration", bf.duration.String()}, {"clients", fmt.Sprint(bf.clients)}, {"rooms", fmt.Sprint(bf.rooms)},
		{"rate", fmt.Sprint(bf.rate)}, {"seed", fmt.Sprint(bf.seed)}, {"server-nice", fmt.Sprint(serverNice)}, {"source-addrs", fmt.Sprint(sourceAddrs)}} {
		if fs.Changed(fl.name) {
			o.BenchArgs = append(o.BenchArgs, "--"+fl.name, fl.val)
		}
	}
	if ceiling != "auto" {
		o.BenchArgs = append(o.BenchArgs, "--ceiling", ceiling)
	}
	if o.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("sweep: this binary: %w", err)
	}
	if err := o.Check(s.Clients); err != nil {
		var ue *sweep.UsageError
		if errors.As(err, &ue) {
			return usageErr("%v", err)
		}
		return err
	}
	if err := raiseFileLimit(s.Clients); err != nil { // every run inherits it
		return err
	}
	o.Progress = os.Stderr
	kind := o.Kind
	if kind == "" {
		kind = metrics.SweepKindSweep
	}
	dir := filepath.Join(bf.out, kind+"-"+time.Now().Format("20060102-150405"))
	fmt.Fprintf(os.Stderr, "chatbench sweep: %d configurations x %d rounds of %s into %s\n", len(o.Configs()), repeat, s.Name, dir)
	sw, runErr := sweep.Run(ctx, o, dir)
	if sw == nil {
		return runErr
	}
	files, err := reports.RenderSweep(dir, sw)
	if err != nil {
		return err
	}
	if err := reports.WriteSweepText(out, sw); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s\nreport: %s\n", strings.Join(files[:len(files)-1], ", "), files[len(files)-1])
	if runErr != nil {
		return runErr
	}
	if failed := sw.Failed(); len(failed) > 0 {
		names := make([]string, len(failed))
		for i, r := range failed {
			names[i] = fmt.Sprintf("%s round %d", r.Config, r.Round)
		}
		return &exitError{code: exitRunFailed, err: fmt.Errorf("%d of %d runs failed: %s (errors in sweep.json and report.html)",
			len(failed), len(sw.Runs), strings.Join(names, ", "))}
	}
	return nil
}

// sweepCommand is the command line as recorded in sweep.json and under the
// figures: without --out, which says where the files went on one machine,
// not what was measured.
func sweepCommand(args []string) string {
	var keep []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--out":
			i++
			continue
		case strings.HasPrefix(a, "--out="):
			continue
		}
		keep = append(keep, a)
	}
	return strings.TrimSpace("chatbench sweep " + strings.Join(keep, " "))
}
