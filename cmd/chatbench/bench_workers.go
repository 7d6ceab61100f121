package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/scenario"
	"github.com/chatbench/chatbench/bench/workers"
	"github.com/chatbench/chatbench/server/cluster"
)

// checkWorkers validates --workers, --nats and --worker-timeout for s.
func (f *benchFlags) checkWorkers(s *scenario.Scenario) error {
	switch {
	case f.workers < 0:
		return usageErr("--workers %d: use 1 or more driver worker processes (0: drive from this process)", f.workers)
	case f.nats != "" && f.workers == 0:
		return usageErr("--nats %s: say how many workers to wait for with --workers N", f.nats)
	case f.workerTimeout <= 0:
		return usageErr("--worker-timeout %v: must be > 0", f.workerTimeout)
	case f.workers > 0 && f.workers > s.Clients:
		return usageErr("--workers %d: more workers than the %d clients (lower --workers)", f.workers, s.Clients)
	}
	if f.workers > 0 {
		if err := driver.CheckSplit(s, f.workers); err != nil {
			return usageErr("--workers %d: %v", f.workers, err)
		}
	}
	return nil
}

// clientsPerProcess is how many clients one driver process holds.
func (f *benchFlags) clientsPerProcess(clients int) int {
	if f.workers > 0 {
		return (clients + f.workers - 1) / f.workers
	}
	return clients
}

// runWorkers runs the benchmark split over driver workers: local ones
// (started here, over an embedded NATS server) or, with --nats, whichever
// workers join on that NATS.
func runWorkers(ctx context.Context, f benchFlags, opts driver.Options) (*driver.Result, error) {
	o := workers.Options{NATS: f.nats, Workers: f.workers, WaitTimeout: f.workerTimeout, Version: commitID(),
		Driver: opts, LogLevel: f.logLevel}
	// --source-addrs is per worker (checkSourceAddrs counted one worker's
	// clients): worker i binds 127.0.0.(1+i*N) .. (i+1)*N
	o.Driver.SourceAddrs = 0
	if f.sourceAddrs > 1 {
		o.Driver.SourceAddrs = f.sourceAddrs
	}
	if o.Driver.SourceAddrs*f.workers > 254 {
		return nil, usageErr("--workers %d x %d source addresses each: more than 127.0.0.1..254", f.workers, o.Driver.SourceAddrs)
	}
	if f.nats != "" {
		fmt.Fprintf(os.Stderr, "chatbench bench: waiting up to %v for %d workers on NATS (chatbench worker --nats URL)\n", f.workerTimeout, f.workers)
		return workers.Run(ctx, o)
	}
	ns, err := cluster.StartNATS("127.0.0.1", -1, "")
	if err != nil {
		return nil, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	o.NATS = ns.ClientURL()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the workers: %w", err)
	}
	dead := make(chan string, f.workers)
	o.Dead = dead
	var kids []*localWorker
	defer func() {
		for _, k := range kids {
			k.stop()
		}
	}()
	for i := range f.workers {
		name := fmt.Sprintf("w%d", i)
		k, err := startLocalWorker(ctx, exe, name, o.NATS, dead)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
		o.Expect = append(o.Expect, name)
	}
	fmt.Fprintf(os.Stderr, "chatbench bench: %d local workers (%s) over NATS %s\n", f.workers, strings.Join(o.Expect, ", "), o.NATS)
	return workers.Run(ctx, o)
}

// localWorker is a `chatbench worker --once` child of this bench.
type localWorker struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startLocalWorker starts one worker and waits for its READY line; its
// output goes to our stderr prefixed with its name, and dead gets its name
// when it exits.
func startLocalWorker(ctx context.Context, exe, name, url string, dead chan<- string) (*localWorker, error) {
	cmd := exec.Command(exe, "worker", "--nats", url, "--name", name, "--once")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", name, err)
	}
	k := &localWorker{name: name, cmd: cmd, done: make(chan struct{})}
	tail := &lastLines{}
	ready := make(chan struct{})
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); prefixLines(os.Stderr, "["+name+"] ", stderr, tail) }()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(sc.Text(), "READY ") {
				seen = true
				close(ready)
				continue
			}
			fmt.Fprintln(os.Stderr, "["+name+"] "+sc.Text())
		}
	}()
	go func() {
		pipes.Wait()
		_ = cmd.Wait()
		close(k.done)
		dead <- name
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return k, nil
	case <-k.done:
		return nil, fmt.Errorf("worker %s exited before it was ready: %s", name, tail.String())
	case <-timer.C:
		k.stop()
		return nil, fmt.Errorf("worker %s printed no READY line within %v: %s", name, readyTimeout, tail.String())
	case <-ctx.Done():
		k.stop()
		return nil, errors.Join(ctx.Err(), fmt.Errorf("worker %s not started", name))
	}
}

// stop asks the worker to end (SIGTERM) and kills it after 15 s.
func (k *localWorker) stop() {
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(15 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}
