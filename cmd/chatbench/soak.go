package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/soak"
)

func init() {
	register("soak", "churn clients against a server for a long time and fail if memory, goroutines or fds leak", runSoak)
}

const soakExitCodes = `
Exit codes:
  0   every gauge came back within its margin after the load, and none grew
      steadily under it
  1   the soak could not run (server did not start, /metrics unreadable)
  2   usage error
  99  a gauge leaked (or over 1% of client steps failed): see the FAIL lines
`

func runSoak(ctx context.Context, args []string) error {
	fs := newFlags("soak")
	var o soak.Options
	var topology, target, metrics, out, serverArgs string
	var connectors, shards int
	var marginRSS float64
	var marginG, marginFD int
	fs.StringVar(&topology, "topology", "single", "server to start: single or split (ignored with --target)")
	fs.IntVar(&connectors, "connectors", 0, "connectors of the started server (default: the server's)")
	fs.IntVar(&shards, "shards", 0, "chat shards of the started split server (default 1)")
	fs.StringVar(&serverArgs, "server-args", "", "extra flags for the started server, space separated (e.g. \"--max-queue 1048576\")")
	fs.StringVar(&target, "target", "", "gate host:port of a running server instead of starting one (needs --metrics)")
	fs.StringVar(&metrics, "metrics", "", "comma-separated /metrics URLs of every process of the --target server")
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the churn load runs")
	fs.IntVar(&o.Clients, "clients", 200, "clients churning at once (each: connect, enter, chat, hop, chat, leave, again)")
	fs.IntVar(&o.Rooms, "rooms", 20, "rooms the clients enter and hop between (2 or more)")
	fs.IntVar(&o.Chats, "chats", 5, "chats a client sends in a room before it hops or leaves")
	fs.IntVar(&o.Hops, "hops", 2, "room hops per connection before the client leaves (negative: none)")
	fs.DurationVar(&o.ChatInterval, "chat-interval", 500*time.Millisecond, "pause between two chats of one client")
	fs.DurationVar(&o.Sample, "sample", 5*time.Second, "interval between two reads of every /metrics")
	fs.DurationVar(&o.Settle, "settle", 90*time.Second, "longest wait after the load for the gauges to come back within their margins")
	fs.DurationVar(&o.Warmup, "warmup", 0, "start of the load left out of the growth trend (default: a quarter of --duration)")
	fs.Float64Var(&marginRSS, "margin-rss", 64, "resident memory (MiB) allowed above the baseline after the load, and as trend under load, per process")
	fs.IntVar(&marginG, "margin-goroutines", 20, "goroutines allowed above the baseline after the load, and as trend under load, per process")
	fs.IntVar(&marginFD, "margin-fds", 10, "open fds allowed above the baseline after the load, and as trend under load, per process")
	fs.StringVar(&out, "out", "results", "directory for soak-<time>/ (samples.csv, soak.png, soak.txt)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench soak [flags]\n\n%s", fs.FlagUsages())
		fmt.Fprint(os.Stderr, soakExitCodes)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case o.Duration <= 0:
		return usageErr("--duration %v: give a positive duration such as 10m", o.Duration)
	case o.Clients < 1:
		return usageErr("--clients %d: give 1 or more", o.Clients)
	case o.Rooms < 2 && o.Hops >= 0:
		return usageErr("--rooms %d: hopping needs 2 or more rooms (or --hops -1)", o.Rooms)
	case marginRSS <= 0 || marginG <= 0 || marginFD <= 0:
		return usageErr("--margin-rss, --margin-goroutines and --margin-fds must be positive")
	case target != "" && metrics == "":
		return usageErr("--target %s needs --metrics with the /metrics URL of each of its processes", target)
	case target == "" && metrics != "":
		return usageErr("--metrics belongs with --target; without --target the soak starts its own server and finds its /metrics")
	}
	topology = strings.ToLower(topology)
	if target == "" && topology != "single" && topology != "split" {
		return usageErr("--topology %q: use single or split", topology)
	}
	if err := raiseFileLimit(o.Clients); err != nil {
		return err
	}
	o.Margins = soak.Margins{RSSBytes: marginRSS * (1 << 20), Goroutines: float64(marginG), FDs: float64(marginFD)}
	o.Progress = os.Stderr
	what := "target " + target
	if target == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		sargs := []string{"serve", "--topology", topology, "--host", "127.0.0.1",
			"--gate-port", "-1", "--connector-port", "-1", "--http-port", "-1", "--log-level", "warn"}
		if connectors > 0 {
			sargs = append(sargs, "--connectors", strconv.Itoa(connectors))
		}
		if shards > 0 {
			sargs = append(sargs, "--shards", strconv.Itoa(shards))
		}
		sargs = append(sargs, strings.Fields(serverArgs)...)
		srv, err := startChild(ctx, exe, sargs, 0, readyTimeout)
		if err != nil {
			return err
		}
		defer srv.stop()
		target = srv.gate
		hosts := srv.ready["https"]
		if hosts == "" || hosts == "-" {
			hosts = srv.ready["http"]
		}
		var urls []string
		for _, h := range strings.Split(hosts, ",") {
			urls = append(urls, "http://"+h+"/metrics")
		}
		metrics = strings.Join(urls, ",")
		what = "chatbench serve --topology " + topology
	}
	o.Gate = target
	o.Metrics = strings.Split(metrics, ",")
	fmt.Fprintf(os.Stderr, "soak: %s, %d clients, %d rooms, %v load; watching %s\n", what, o.Clients, o.Rooms, o.Duration, metrics)
	res, err := soak.Run(ctx, o)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, "soak-"+time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "samples.csv"))
	if err != nil {
		return err
	}
	if err := res.WriteCSV(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	title := fmt.Sprintf("chatbench soak: %s, %d clients, %v (%s)", topology, o.Clients, o.Duration, res.Start.UTC().Format("2006-01-02 15:04 UTC"))
	if err := res.WritePNG(filepath.Join(dir, "soak.png"), title); err != nil {
		return err
	}
	var text strings.Builder
	fmt.Fprintf(&text, "command: chatbench soak %s\ncommit: %s\nstarted: %s\n", strings.Join(args, " "), commitID(), res.Start.UTC().Format(time.RFC3339))
	res.WriteText(&text)
	if err := os.WriteFile(filepath.Join(dir, "soak.txt"), []byte(text.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(text.String())
	fmt.Printf("results: %s\n", dir)
	if !res.Passed() {
		return &exitError{code: 99}
	}
	return nil
}
