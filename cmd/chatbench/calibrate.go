package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/bench/calibrate"
	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
	"github.com/chatbench/chatbench/bench/perf"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/internal/proc"
)

func init() {
	register("calibrate", "measure this machine's bare websocket fan-out ceiling for a scenario shape (cached)", runCalibrate)
}

func runCalibrate(ctx context.Context, args []string) error {
	fs := newFlags("calibrate")
	var f benchFlags
	var serve, cacheDir string
	var recalibrate bool
	var runs int
	fs.StringVar(&f.scenario, "scenario", "broadcast-storm", "shipped scenario name ("+strings.Join(scenario.Names(), ", ")+") or path of a YAML file")
	fs.DurationVar(&f.duration, "duration", 0, "total length of the timed phases (default: the scenario's)")
	fs.IntVar(&f.clients, "clients", 0, "simulated clients (default: the scenario's)")
	fs.IntVar(&f.rooms, "rooms", 0, "rooms (default: the scenario's)")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per client in chat and hop phases (default: the scenario's)")
	fs.Int64Var(&f.seed, "seed", 0, "random seed (default: the scenario's)")
	fs.StringVar(&f.out, "out", "results", "results root: the cache is <out>/.calibration unless --cache-dir")
	fs.StringVar(&cacheDir, "cache-dir", "", "where calibrations are cached (default $"+calibrationEnv+", else <out>/.calibration)")
	fs.BoolVar(&recalibrate, "recalibrate", false, "measure again even when this machine and shape are cached")
	fs.IntVar(&runs, "runs", 2, "measurements of the shape; the best clean one is the ceiling")
	fs.IntVar(&f.sourceAddrs, "source-addrs", 0, "spread client sockets over 127.0.0.1..N (default: one per 25,000 clients)")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress line")
	fs.IntVar(&f.serverNice, "server-nice", defaultServerNice, "run the bare server this many nice steps below the driver, as bench runs the reference server (0: same priority)")
	fs.StringVar(&serve, "serve", "", "run only the bare fan-out server on this host:port (what calibrate starts as its child); it prints READY addr=HOST:PORT when it listens")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if serve != "" {
		return calibrate.Serve(ctx, serve, func(addr string) {
			fmt.Println(proc.FormatReady("addr", addr))
		})
	}
	s, err := f.load(fs.Changed("seed"))
	if err != nil {
		return err
	}
	if f.serverNice < 0 || f.serverNice > 19 {
		return usageErr("--server-nice %d: use 0 (same priority as the driver) to 19", f.serverNice)
	}
	if cacheDir == "" {
		cacheDir = calibrationDirFor(f.out)
	}
	var progress io.Writer
	if !f.quiet {
		progress = os.Stderr
	}
	rec, path, cached, err := ceiling(ctx, s, cacheDir, recalibrate, runs, f.sourceAddrs, f.serverNice, progress)
	if err != nil {
		return err
	}
	printRecord(os.Stdout, rec, path, cached)
	return nil
}

// ceiling returns this machine's calibrated ceiling for s: from the cache, or
// measured now (bare server as a child process nice steps below us, our
// driver against it) and cached. path is the cache file.
func ceiling(ctx context.Context, s *scenario.Scenario, cacheDir string, recalibrate bool, runs, sourceAddrs, nice int, progress io.Writer) (rec *calibrate.Record, path string, cached bool, err error) {
	cache := calibrate.Cache{Dir: cacheDir}
	m := metrics.DetectMachine()
	if !recalibrate {
		rec, err := cache.Load(m, s)
		if err == nil && rec.Valid() && rec.ServerNice == nice {
			return rec, "", true, nil
		}
		if err == nil && rec.ServerNice != nice {
			fmt.Fprintf(os.Stderr, "chatbench calibrate: the cached ceiling was measured with the bare server at nice +%d, this run's server is at +%d: measuring again\n",
				rec.ServerNice, nice)
		} else if err == nil {
			fmt.Fprintf(os.Stderr, "chatbench calibrate: the cached ceiling was not a clean measurement (driver-bound %v, lost %d, errors %d): measuring again\n",
				rec.Driver.DriverBound, rec.Lost, rec.Errors)
		} else if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "chatbench calibrate: %v (measuring again)\n", err)
		}
	}
	f := benchFlags{sourceAddrs: sourceAddrs}
	if err := f.checkSourceAddrs(s.Clients); err != nil {
		return nil, "", false, err
	}
	if err := raiseFileLimit(s.Clients); err != nil {
		return nil, "", false, err
	}
	bare, err := startBare(ctx, nice)
	if err != nil {
		return nil, "", false, err
	}
	defer bare.stop()
	fmt.Fprintf(os.Stderr, "chatbench calibrate: measuring the bare fan-out ceiling for %s (best of %d runs; bare server %s, pid %d)\n",
		calibrate.ShapeOf(s), max(runs, 1), bare.addr, bare.p.Pid())
	rec, _, err = calibrate.Measure(ctx, calibrate.Options{
		Scenario: s, Target: bare.addr, Out: cacheDir, Runs: runs,
		Driver: driver.Options{SourceAddrs: f.sourceAddrs, Progress: progress,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))},
	})
	if err != nil {
		return nil, "", false, err
	}
	rec.ServerNice = nice
	if rec.Lost > 0 || rec.Errors > 0 {
		fmt.Fprintf(os.Stderr, "chatbench calibrate: warning: the bare run lost %d deliveries and saw %d errors\n", rec.Lost, rec.Errors)
	}
	path, err = cache.Save(rec, s)
	return rec, path, false, err
}

func printRecord(w io.Writer, r *calibrate.Record, path string, cached bool) {
	src := "measured now"
	if cached {
		src = "cached (--recalibrate measures again)"
	}
	d := r.Delivery
	ms := func(us int64) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) }
	fmt.Fprintf(w, "ceiling    %s deliveries/s (peak second %s) for %s\n", perf.Count(r.DeliveriesPerSec), perf.Count(r.PeakDeliveriesPerSec), r.Shape)
	fmt.Fprintf(w, "machine    %s, %d cores, %.0f GiB, kernel %s (fingerprint %s)\n", r.Machine.CPUModel, r.Machine.Cores,
		float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.Kernel, r.Fingerprint)
	fmt.Fprintf(w, "delivery   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d delivered, %d lost, %d errors)\n",
		ms(d.P50Us), ms(d.P90Us), ms(d.P99Us), ms(d.P999Us), ms(d.MaxUs), r.Delivered, r.Lost, r.Errors)
	bound := "no"
	if r.Driver.DriverBound {
		bound = "YES: " + r.Driver.DriverBoundWhy
	}
	fmt.Fprintf(w, "driver     cpu %.0f%%, driver-bound %s\n", r.Driver.CPUPercent, bound)
	fmt.Fprintf(w, "when       %s, load average %s, %s\n", r.MeasuredAt.Format(time.RFC3339), r.LoadAvg, src)
	if path != "" {
		fmt.Fprintf(w, "cached in  %s\n", path)
	}
}

// bareChild is `chatbench calibrate --serve` started from this same binary.
type bareChild struct {
	p    *proc.Process
	addr string
}

// startBare starts the bare fan-out server, nice steps nicer than us, and
// waits for its line "READY addr=HOST:PORT".
func startBare(ctx context.Context, nice int) (*bareChild, error) {
	exe, err := proc.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the bare server: %w", err)
	}
	p, f, err := proc.StartReady(ctx, proc.Options{
		Role: "calibrate", ID: "bare", Path: exe, Args: []string{"calibrate", "--serve", "127.0.0.1:0"},
		Nice: nice, ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, fmt.Errorf("start the bare server: %w", err)
	}
	if f.Get("addr") == "" {
		_ = p.Stop()
		return nil, fmt.Errorf("the bare server's READY line has no addr=: %v", f)
	}
	return &bareChild{p: p, addr: f.Get("addr")}, nil
}

func (b *bareChild) stop() { _ = b.p.Stop() }

// withCeiling fills the "ceiling" block of a bench run's summary for mode
// auto (cached, else measured now), recalibrate (measured now) or off, and
// writes the summary again. A failed calibration is reported, not fatal.
func withCeiling(ctx context.Context, mode string, f benchFlags, s *scenario.Scenario, res *driver.Result) {
	if mode == "off" || res == nil || res.Summary == nil || res.Dir == "" {
		return
	}
	var progress io.Writer
	if !f.quiet {
		progress = os.Stderr
	}
	rec, path, cached, err := ceiling(ctx, s, calibrationDirFor(f.out), mode == "recalibrate", 2, f.sourceAddrs, f.serverNice, progress)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chatbench bench: no ceiling: %v\n", err)
		return
	}
	if !cached {
		printRecord(os.Stderr, rec, path, cached)
	}
	res.Summary.Ceiling = rec.Ceiling(res.Summary)
	if err := res.Summary.Write(res.Dir); err != nil {
		fmt.Fprintf(os.Stderr, "chatbench bench: ceiling: %v\n", err)
	}
}

// isLoopback reports whether host:port is on this machine (the ceiling is
// this machine's: it says nothing about a server elsewhere).
func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// calibrationEnv, when set, is the calibration cache of every command
// (make perf shares one cache between runs with different --out).
const calibrationEnv = "CHATBENCH_CALIBRATION_DIR"

func calibrationDirFor(out string) string {
	if d := os.Getenv(calibrationEnv); d != "" {
		return d
	}
	return calibrate.DefaultDir(out)
}
