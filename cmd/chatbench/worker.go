package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/chatbench/chatbench/bench/workers"
	"github.com/chatbench/chatbench/internal/natsopts"
)

func init() {
	register("worker", "run as a driver worker of a split benchmark run (chatbench bench --workers N --nats URL)", runWorker)
}

type workerCmdFlags struct {
	auth     natsopts.Options
	nats     string
	name     string
	once     bool
	logLevel string
}

func runWorker(ctx context.Context, args []string) error {
	fs := newFlags("worker")
	var f workerCmdFlags
	fs.StringVar(&f.nats, "nats", "", "NATS URLs nats://host:port[,...] the coordinator uses (required); credentials and TLS as for serve --topology split (--nats-*)")
	fs.StringVar(&f.name, "name", "", "this worker's name, unique among the run's workers: letters, digits, - and _ (default host-pid)")
	fs.BoolVar(&f.once, "once", false, "exit after one run (default: wait for the next coordinator until interrupted)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "the worker's own log level: debug, info, warn or error (the driver's is the coordinator's --log-level)")
	f.auth.AddFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: chatbench worker --nats nats://host:port [--name W] [flags]\n\n"+
			"Joins the coordinator of a split run (chatbench bench --nats URL --workers N) from this\n"+
			"machine: it drives its share of the clients and ships its results to the coordinator.\n\nflags:\n%s", fs.FlagUsages())
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.nats == "" {
		return usageErr("--nats is required: the NATS URL of the coordinator (e.g. nats://10.0.0.5:4222)")
	}
	if strings.ContainsAny(f.name, " .*>\t") {
		return usageErr("--name %q: use letters, digits, - and _ (no spaces, dots, * or >)", f.name)
	}
	f.auth.URLs = natsURLs(f.nats)
	f.auth.FromEnv()
	if err := f.auth.Validate(); err != nil {
		return usageErr("%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageErr("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	raiseFileLimitToHard()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return workers.Serve(ctx, workers.WorkerOptions{
		NATS: f.auth, Name: f.name, Version: commitID(), Once: f.once, Logger: log,
		Ready: func(name string) {
			// the line a parent waits for (and a person reads)
			fmt.Printf("READY worker=%s\n", name)
			log.Info("waiting for a coordinator", "name", name)
		},
	})
}

// raiseFileLimitToHard lifts the soft open-file limit to the hard one: a
// worker does not know how many clients it will drive until it is told.
func raiseFileLimitToHard() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}
