package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/bench/workers"
	"github.com/chatbench/chatbench/internal/natsopts"
	"github.com/chatbench/chatbench/internal/proc"
	"github.com/chatbench/chatbench/server/cluster"
	"github.com/spf13/pflag"
)

// workerFlags are bench's flags of a run split over driver workers.
type workerFlags struct {
	workers int
	nats    string
	timeout time.Duration
	auth    natsopts.Options // credentials, TLS and subject prefix of --nats
}

func (f *benchFlags) addWorkerFlags(fs *pflag.FlagSet) {
	w := &f.split
	fs.IntVar(&w.workers, "workers", 0, "split the run over N driver worker processes: started here over an embedded NATS server, or with --nats the N that join (0: drive from this process)")
	fs.StringVar(&w.nats, "nats", "", "NATS URLs nats://host:port[,...] where remote workers (chatbench worker --nats URL) join; needs --workers; credentials and TLS with --nats-*")
	fs.DurationVar(&w.timeout, "worker-timeout", 60*time.Second, "longest wait for the --workers to join")
	w.auth.AddFlags(fs)
}

// check validates the worker flags for s.
func (w *workerFlags) check(s *scenario.Scenario) error {
	switch {
	case w.workers < 0:
		return usageErr("--workers %d: use 1 or more driver worker processes (0: drive from this process)", w.workers)
	case w.nats != "" && w.workers == 0:
		return usageErr("--nats %s: say how many workers to wait for with --workers N", natsopts.Redact(w.nats))
	case w.timeout <= 0:
		return usageErr("--worker-timeout %v: must be > 0", w.timeout)
	case w.workers > 0 && w.workers > s.Clients:
		return usageErr("--workers %d: more workers than the %d clients (lower --workers)", w.workers, s.Clients)
	}
	w.auth.URLs = natsURLs(w.nats)
	w.auth.FromEnv()
	if err := w.auth.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if w.nats == "" && (w.auth.User != "" || w.auth.TokenFile != "" || w.auth.NKeyFile != "" || w.auth.CredsFile != "" || w.auth.CAFile != "") {
		return usageErr("the --nats-* credentials are for the NATS of --nats URL: add --nats (local workers use an embedded NATS server of their own)")
	}
	if w.workers > 0 {
		if err := driver.CheckSplit(s, w.workers); err != nil {
			return usageErr("--workers %d: %v", w.workers, err)
		}
	}
	return nil
}

// clientsPerProcess is how many clients one driver process holds.
func (f *benchFlags) clientsPerProcess(clients int) int {
	if n := f.split.workers; n > 0 {
		return (clients + n - 1) / n
	}
	return clients
}

// runWorkers runs the benchmark split over driver workers: local ones
// (started here, over an embedded NATS server) or, with --nats, whichever
// workers join on that NATS.
func runWorkers(ctx context.Context, f benchFlags, opts driver.Options) (*driver.Result, error) {
	w := f.split
	o := workers.Options{NATS: w.auth, Workers: w.workers, WaitTimeout: w.timeout, Version: commitID(),
		Driver: opts, LogLevel: f.logLevel}
	// --source-addrs is per worker (checkSourceAddrs counted one worker's
	// clients): worker i binds 127.0.0.(1+i*N) .. (i+1)*N
	o.Driver.SourceAddrs = 0
	if f.sourceAddrs > 1 {
		o.Driver.SourceAddrs = f.sourceAddrs
	}
	if o.Driver.SourceAddrs*w.workers > 254 {
		return nil, usageErr("--workers %d x %d source addresses each: more than 127.0.0.1..254", w.workers, o.Driver.SourceAddrs)
	}
	if w.nats != "" {
		fmt.Fprintf(os.Stderr, "chatbench bench: waiting up to %v for %d workers on NATS %s (chatbench worker --nats URL)\n",
			w.timeout, w.workers, natsopts.Redact(w.nats))
		return workers.Run(ctx, o)
	}
	// an embedded NATS server that admits only our workers: its token goes
	// to them in the environment, never on a command line
	token, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	ns, err := cluster.StartNATS("127.0.0.1", -1, token)
	if err != nil {
		return nil, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	o.NATS = natsopts.Options{URLs: []string{ns.ClientURL()}, Token: token}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the workers: %w", err)
	}
	dead := make(chan string, w.workers)
	o.Dead = dead
	var kids []*localWorker
	defer func() {
		for _, k := range kids {
			k.stop()
		}
	}()
	for i := range w.workers {
		name := fmt.Sprintf("w%d", i)
		k, err := startLocalWorker(ctx, exe, name, ns.ClientURL(), token, dead)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
		o.Expect = append(o.Expect, name)
	}
	fmt.Fprintf(os.Stderr, "chatbench bench: %d local workers (%s) over NATS %s\n", w.workers, strings.Join(o.Expect, ", "), ns.ClientURL())
	return workers.Run(ctx, o)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// localWorker is a `chatbench worker --once` child of this bench.
type localWorker struct {
	p *proc.Process
}

// startLocalWorker starts one worker and waits for its READY line; its
// output goes to our stderr prefixed with its name, and dead gets its name
// when it exits.
func startLocalWorker(ctx context.Context, exe, name, url, token string, dead chan<- string) (*localWorker, error) {
	p, _, err := proc.StartReady(ctx, proc.Options{
		Role: "worker", ID: name, Path: exe,
		Args:         []string{"worker", "--nats", url, "--name", name, "--once"},
		Env:          append(os.Environ(), natsopts.EnvToken+"="+token),
		ReadyTimeout: readyTimeout, StopTimeout: 15 * time.Second,
		ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, err
	}
	go func() {
		<-p.Done()
		dead <- name
	}()
	return &localWorker{p: p}, nil
}

// stop asks the worker to end (SIGTERM) and kills it after 15 s.
func (k *localWorker) stop() { _ = k.p.Stop() }
