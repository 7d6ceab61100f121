package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/reports"
	"github.com/spf13/pflag"
)

func init() {
	register("report", "re-render results (text and plots) from result directories; compare or merge runs", runReport)
}

type reportOptions struct {
	out     string
	noPlots bool
	merge   bool
	force   bool
}

func runReport(ctx context.Context, args []string) error { return report(ctx, args, os.Stdout) }

// report parses args and renders to stdout (a parameter for tests).
func report(ctx context.Context, args []string, stdout io.Writer) error {
	var o reportOptions
	fs := newFlags("report")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench report [flags] <results dir>...\n\n"+
			"Reads summary.json of each directory (never runs anything), prints the text summary\n"+
			"(a comparison table first when given several), and writes report.txt, latency.png,\n"+
			"series.png and report.html. Given a sweep directory (sweep.json), renders the sweep again.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVarP(&o.out, "out", "o", "", "directory for report.txt and the plots (default: the run's directory; for several runs, compare-<first>-vs-<last> next to the first)")
	fs.BoolVar(&o.noPlots, "no-plots", false, "print the text only, write nothing")
	fs.BoolVar(&o.merge, "merge", false, "merge the parts of ONE run (same scenario, seed and topology, made at the same time on several machines) into one summary written to --out, and report it")
	fs.BoolVar(&o.force, "force", false, "with --merge: merge runs that differ in scenario, seed or topology or did not overlap in time (the numbers are then not those of any run)")
	// Positional arguments are the directories: parse here instead of
	// parseFlags, which refuses them.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if err := applyProfileFlags(fs); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	return reportRun(ctx, o, fs.Args(), stdout)
}

func reportRun(_ context.Context, o reportOptions, dirs []string, stdout io.Writer) error {
	if len(dirs) == 1 && !o.merge {
		if _, err := os.Stat(filepath.Join(dirs[0], metrics.SweepFile)); err == nil {
			return reportSweep(dirs[0], o, stdout)
		}
	}
	runs, err := reports.Load(dirs...)
	if err != nil {
		return err
	}
	if o.merge {
		if o.out == "" {
			return usageErr("--merge needs --out (where the merged summary goes)")
		}
		sums := make([]*metrics.Summary, len(runs))
		for i, r := range runs {
			sums[i] = r.Summary
		}
		m, err := metrics.MergeWith(metrics.MergeOptions{Force: o.force}, sums...)
		var me *metrics.MismatchError
		if errors.As(err, &me) {
			return fmt.Errorf("%w\n  part 0 = %s, part %d = %s\n  merge only the result directories of one multi-machine run; "+
				"compare separate runs with `chatbench report %s %s` (no --merge), or pass --force to merge anyway",
				err, runs[0].Dir, me.Part, runs[me.Part].Dir, runs[0].Dir, runs[me.Part].Dir)
		}
		if err != nil {
			return err
		}
		if err := m.Write(o.out); err != nil {
			return err
		}
		runs = []reports.Run{{Label: filepath.Base(filepath.Clean(o.out)), Dir: o.out, Summary: m}}
	}
	if o.noPlots {
		return reports.WriteReport(stdout, runs)
	}
	out := o.out
	if out == "" {
		out = runs[0].Dir
		if len(runs) > 1 {
			name := "compare-" + runs[0].Label + "-vs-" + runs[len(runs)-1].Label
			out = filepath.Join(filepath.Dir(filepath.Clean(runs[0].Dir)), strings.NewReplacer("/", "_", `\`, "_").Replace(name))
		}
	}
	files, err := reports.Render(stdout, out, runs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join(files, ", "))
	return nil
}

// reportSweep renders a sweep (or compare) directory again: its plots and
// report.html from sweep.json and the runs' summaries.
func reportSweep(dir string, o reportOptions, stdout io.Writer) error {
	sw, err := reports.LoadSweep(dir)
	if err != nil {
		return err
	}
	if err := reports.WriteSweepText(stdout, sw); err != nil {
		return err
	}
	if o.noPlots {
		return nil
	}
	if o.out != "" && filepath.Clean(o.out) != filepath.Clean(dir) {
		return fmt.Errorf("%w: --out with a sweep directory: a sweep's report links its runs relative to it, so it is written into %s", errUsage, dir)
	}
	files, err := reports.RenderSweep(dir, sw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\nreport: %s\n", strings.Join(files[:len(files)-1], ", "), files[len(files)-1])
	return nil
}
