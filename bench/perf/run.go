package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/internal/proc"
)

// Keys are the targets in the order Run measures them (Options.Only).
var Keys = []string{"storm", "split", "latency", "search", "memory", "clients", "bound"}

// Options configure Run. Zero values mean the documented defaults.
type Options struct {
	Exe string // the chatbench binary whose bench subcommand measures each run
	Out string // results of every run, and perf.log
	// Only lists the targets to measure (default Keys).
	Only        []string
	Recalibrate bool // measure the storm ceilings again instead of using the cached ones
	// LatencyRuns is how many runs of ours and of the bare server, interleaved,
	// the latency ratio is judged on (median of each; default 3).
	LatencyRuns int
	// Retries is how many times a run that was driver-bound (its numbers
	// measure the driver, so it is no measurement) is run again before it
	// stands (default 2; negative: never).
	Retries int
	// SearchSteps bounds the bisection for the bare server's highest rate
	// within Limits.P99 (default 3 steps after the first).
	SearchSteps int
	// StartBare starts the bare calibration server (as bench starts the
	// reference one: a child process, nicer than the driver) and returns its
	// address and how to stop it.
	StartBare func(ctx context.Context) (addr string, stop func(), err error)
	Limits    Limits    // default Default
	Log       io.Writer // every child's output (perf.log)
	Progress  io.Writer // one line per run (stderr)
	Env       []string  // extra environment of the children
	Now       func() time.Time
}

// runner measures the targets.
type runner struct {
	ctx    context.Context
	o      Options
	l      Limits
	rows   []Row
	single map[string]*metrics.Summary
}

// Run measures the chosen targets and returns the table's rows; a target
// that could not be measured is a row not met. The error is the context's.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if o.LatencyRuns == 0 {
		o.LatencyRuns = 3
	}
	if o.SearchSteps == 0 {
		o.SearchSteps = 3
	}
	if o.Retries == 0 {
		o.Retries = 2
	}
	if o.Limits == (Limits{}) {
		o.Limits = Default
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Only) == 0 {
		o.Only = Keys
	}
	want := map[string]bool{}
	for _, k := range o.Only {
		want[k] = true
	}
	r := &runner{ctx: ctx, o: o, l: o.Limits, single: map[string]*metrics.Summary{}}
	steps := map[string]func() error{
		"storm": r.storm, "split": r.split, "latency": r.latency, "search": r.search,
		"memory": r.memory, "clients": r.clients, "bound": r.bound,
	}
	for _, k := range Keys {
		if !want[k] || ctx.Err() != nil {
			continue
		}
		if err := steps[k](); err != nil {
			fmt.Fprintf(o.Progress, "chatbench perf: %s: %v\n", k, err)
			r.rows = append(r.rows, Row{Key: k, Name: k, Measured: "error: " + err.Error(), Ratio: "-", Target: "-"})
		}
	}
	return r.rows, ctx.Err()
}

// CheckOnly returns an error naming an unknown target key.
func CheckOnly(only []string) error {
	for _, k := range only {
		ok := false
		for _, v := range Keys {
			ok = ok || k == v
		}
		if !ok {
			return fmt.Errorf("unknown target %q: use %s", k, strings.Join(Keys, ","))
		}
	}
	return nil
}

// Table writes the target table.
func Table(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmeasured\tratio\ttarget\tmet\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Measured, r.Ratio, r.Target, r.MetText())
	}
	return tw.Flush()
}

// bench runs `chatbench bench` in a child process and reads its summary.
func (r *runner) bench(name string, args ...string) (*metrics.Summary, error) {
	dir := filepath.Join(r.o.Out, name)
	argv := append([]string{"bench", "--quiet", "--out", dir}, args...)
	fmt.Fprintf(r.o.Progress, "chatbench perf: %s: chatbench %s\n", name, strings.Join(argv, " "))
	fmt.Fprintf(r.o.Log, "\n== %s: chatbench %s (load %s)\n", name, strings.Join(argv, " "), metrics.LoadAvg())
	_, runErr := proc.Run(r.ctx, proc.Options{
		Role: "bench", Path: r.o.Exe, Args: argv, Env: append(os.Environ(), r.o.Env...),
		Log: r.o.Log, NoPrefix: true, StopTimeout: 20 * time.Second, ParentDeathSignal: syscall.SIGTERM,
	})
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "summary.json"))
	if len(matches) == 0 {
		if runErr == nil {
			runErr = errors.New("no summary.json")
		}
		return nil, fmt.Errorf("%s: %w (see %s)", name, runErr, filepath.Join(r.o.Out, "perf.log"))
	}
	sum, err := metrics.ReadSummary(matches[len(matches)-1])
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.o.Progress, "chatbench perf: %s: %s/s, p99 %s, lost %d, errors %d, driver-bound %v\n",
		name, Count(sum.DeliveriesPerSec), USText(sum.Ops["delivery"].P99Us), sum.Counters.Lost, sum.Counters.Errors, sum.Driver.DriverBound)
	return sum, nil
}

// retried runs a measurement, and runs it again (up to Retries times) while
// it is driver-bound: a moment of a busy machine should not void a row. The
// last attempt stands, driver-bound or not.
func (r *runner) retried(name string, run func(name string) (*metrics.Summary, error)) (*metrics.Summary, error) {
	sum, err := run(name)
	for try := 1; err == nil && sum.Driver.DriverBound && try <= r.o.Retries && r.ctx.Err() == nil; try++ {
		fmt.Fprintf(r.o.Progress, "chatbench perf: %s was driver-bound (%s): measuring again (%d of %d)\n", name, sum.Driver.DriverBoundWhy, try, r.o.Retries)
		sum, err = run(fmt.Sprintf("%s-retry%d", name, try))
	}
	return sum, err
}

// benchArgs returns a run of bench with these flags, for retried.
func (r *runner) benchArgs(args ...string) func(string) (*metrics.Summary, error) {
	return func(name string) (*metrics.Summary, error) { return r.bench(name, args...) }
}

// benchBare runs bench against a bare calibration server started for it.
func (r *runner) benchBare(name string, args ...string) (*metrics.Summary, error) {
	if r.o.StartBare == nil {
		return nil, errors.New("no way to start the bare server")
	}
	addr, stop, err := r.o.StartBare(r.ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: bare server: %w", name, err)
	}
	defer stop()
	return r.bench(name, append([]string{"--target", addr, "--ceiling", "off"}, args...)...)
}

func (r *runner) ceilingFlag() string {
	if r.o.Recalibrate {
		return "recalibrate"
	}
	return "auto"
}

// Storms' deliveries/s are compared over their active windows (first send
// to last delivery: calibrate.Rate), since a storm phase lasts its declared
// duration however fast the server drains it.
//
// The storm shapes: the shipped one (its bursts every 3 s are all delivered
// well within the phase by a good server, so deliveries/s is the offered
// load) and an overload one (5,000 clients in rooms of 100, bursts every
// 1/3 s: 1.5 M deliveries offered in under a second) where deliveries/s is
// the server's throughput.
var storms = []struct {
	name string
	args []string
}{
	{"storm-default", []string{"--scenario", "broadcast-storm"}},
	{"storm-overload", []string{"--scenario", "broadcast-storm", "--clients", "5000", "--duration", "1s"}},
}

func (r *runner) storm() error {
	for _, st := range storms {
		sum, err := r.bench("single-"+st.name, append(st.args, "--ceiling", r.ceilingFlag())...)
		if err != nil {
			return err
		}
		r.single[st.name] = sum
		if st.name == "storm-default" {
			r.single["broadcast-storm"] = sum
		}
		r.rows = append(r.rows, r.l.StormRow(st.name, sum))
	}
	return nil
}

func (r *runner) split() error {
	for _, st := range storms {
		single := r.single[st.name]
		if single == nil {
			var err error
			if single, err = r.retried("single-"+st.name, r.benchArgs(append(st.args, "--ceiling", "off")...)); err != nil {
				return err
			}
			r.single[st.name] = single
		}
		sum, err := r.retried("split-"+st.name, r.benchArgs(append(st.args, "--topology", "split", "--connectors", "2", "--shards", "2", "--ceiling", "off")...))
		if err != nil {
			r.rows = append(r.rows, Row{Key: "split", Name: "split 2x2 " + st.name + " vs single", Target: fmt.Sprintf(">= %.2f", r.l.SplitRatio),
				Measured: "not measured: " + err.Error(), Ratio: "-"})
			continue
		}
		r.rows = append(r.rows, r.l.SplitRow(st.name, sum, single))
	}
	return nil
}

// latency runs the latency scenario on ours and on the bare server,
// interleaved (ours, bare, ours, bare, ...), so both see the same machine.
func (r *runner) latency() error {
	var ours, bare []*metrics.Summary
	for i := range r.o.LatencyRuns {
		o, err := r.retried(fmt.Sprintf("latency-ours-%d", i+1), r.benchArgs("--scenario", "latency", "--ceiling", "off"))
		if err != nil {
			return err
		}
		ours = append(ours, o)
		b, err := r.retried(fmt.Sprintf("latency-bare-%d", i+1), func(name string) (*metrics.Summary, error) {
			return r.benchBare(name, "--scenario", "latency")
		})
		if err != nil {
			return err
		}
		bare = append(bare, b)
	}
	r.single["latency"], _, _ = Median(ours)
	r.single["latency-bare"], _, _ = Median(bare)
	r.rows = append(r.rows, r.l.LatencyRatioRow(ours, bare))
	return nil
}

// search finds the highest rate at which the bare server holds P99 on the
// latency scenario's shape, by bisection between a rate it holds and one it
// does not, then runs ours at P99RateShare of it.
func (r *runner) search() error {
	s, err := scenario.Load("latency")
	if err != nil {
		return err
	}
	roomSize := float64(s.Clients) / float64(s.Rooms.Count)
	perClient := func(deliveries float64) float64 { return deliveries / (float64(s.Clients) * roomSize) }
	var steps []Step
	try := func(rate float64) (Step, error) {
		sum, err := r.retried(fmt.Sprintf("search-bare-%.0f", rate), func(name string) (*metrics.Summary, error) {
			return r.benchBare(name, "--scenario", "latency", "--rate", fmt.Sprintf("%g", perClient(rate)))
		})
		st := Step{Rate: rate, Sum: sum}
		if err == nil {
			steps = append(steps, st)
		}
		return st, err
	}
	hi, lo := r.l.LatencyRate, 0.0
	if b := r.single["latency-bare"]; b != nil {
		st := Step{Rate: hi, Sum: b}
		steps = append(steps, st)
		if r.l.Holds(st) {
			lo = hi
		}
	}
	// a first rate the bare server holds: a quarter of the top, halved
	// while it does not (at most SearchSteps times)
	for rate, n := hi/4, 0; lo == 0 && n <= r.o.SearchSteps; rate, n = rate/2, n+1 {
		st, err := try(rate)
		if err != nil {
			return err
		}
		if r.l.Holds(st) {
			lo = rate
		} else {
			hi = rate
		}
	}
	if lo > 0 && lo < hi {
		for range r.o.SearchSteps {
			mid := (lo + hi) / 2
			st, err := try(mid)
			if err != nil {
				return err
			}
			if r.l.Holds(st) {
				lo = mid
			} else {
				hi = mid
			}
		}
	}
	best := r.l.HighestHeld(steps)
	if best == 0 {
		r.rows = append(r.rows, r.l.SearchRow(steps, nil, 0))
		return nil
	}
	rate := r.l.P99RateShare * best
	ours, err := r.retried(fmt.Sprintf("search-ours-%.0f", rate), r.benchArgs("--scenario", "latency", "--ceiling", "off", "--rate", fmt.Sprintf("%g", perClient(rate))))
	if err != nil {
		return err
	}
	r.rows = append(r.rows, r.l.SearchRow(steps, ours, rate))
	return nil
}

// Scenarios of the perf runs that the shipped files do not cover: idle
// clients only (memory per client, clients per process), entering fast in
// small rooms so that the onAdd fan-out stays small.
const idleYAML = `name: %s
description: perf - %d idle clients in rooms of 10, entering at 1,000/s, then idle.
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

func (r *runner) idleScenario(clients int) (string, error) {
	name := fmt.Sprintf("perf-idle-%d", clients)
	path := filepath.Join(r.o.Out, name+".yaml")
	err := os.WriteFile(path, fmt.Appendf(nil, idleYAML, name, clients, clients, max(1, clients/10)), 0o644)
	return path, err
}

func (r *runner) memory() error {
	path, err := r.idleScenario(r.l.IdleClients)
	if err != nil {
		return err
	}
	sum, err := r.bench("memory-10k", "--scenario", path, "--ceiling", "off")
	if err != nil {
		return err
	}
	r.rows = append(r.rows, r.l.MemoryRow(sum))
	return nil
}

func (r *runner) clients() error {
	path, err := r.idleScenario(r.l.MaxClients)
	if err != nil {
		return err
	}
	sum, err := r.bench("clients-19k", "--scenario", path, "--source-addrs", "2", "--ceiling", "off")
	if err != nil {
		return err
	}
	r.rows = append(r.rows, r.l.ClientsRow(sum))
	return nil
}

func (r *runner) bound() error {
	var bound []string
	n := 0
	for _, name := range scenario.Names() {
		sum := r.single[name]
		if sum == nil {
			var err error
			if sum, err = r.bench("bound-"+name, "--scenario", name, "--ceiling", "off"); err != nil {
				bound = append(bound, name+" (error)")
				continue
			}
		}
		n++
		if sum.Driver.DriverBound {
			bound = append(bound, name+": "+sum.Driver.DriverBoundWhy)
		}
	}
	r.rows = append(r.rows, BoundRow(n, bound))
	return nil
}
