package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

// CHATBENCH_CPUPROFILE=<prefix>[,<delay>[,<length>]] writes a CPU profile of
// any chatbench process (server, driver, bare calibration server) to
// <prefix>-<command>-<pid>.pprof, from <delay> after start for <length>
// (defaults 0 and 30s): `go tool pprof -top bin/chatbench FILE`. Used by the
// perf work (docs/perf.md); a child process inherits the variable.
//
// CHATBENCH_TRACE=<prefix>[,<delay>[,<length>]] writes a Go execution trace the
// same way (<prefix>-<command>-<pid>.trace; `go tool trace -pprof=sched FILE`
// gives where goroutines waited to run).
func init() {
	startProfile("CHATBENCH_CPUPROFILE", "pprof", pprof.StartCPUProfile, pprof.StopCPUProfile)
	startProfile("CHATBENCH_TRACE", "trace", trace.Start, trace.Stop)
}

func startProfile(env, ext string, start func(io.Writer) error, stop func()) {
	v := os.Getenv(env)
	if v == "" {
		return
	}
	parts := strings.Split(v, ",")
	delay, length := time.Duration(0), 30*time.Second
	if len(parts) > 1 {
		delay, _ = time.ParseDuration(parts[1])
	}
	if len(parts) > 2 {
		if d, err := time.ParseDuration(parts[2]); err == nil {
			length = d
		}
	}
	cmd := "none"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	path := fmt.Sprintf("%s-%s-%d.%s", parts[0], cmd, os.Getpid(), ext)
	go func() {
		time.Sleep(delay)
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", env, err)
			return
		}
		if err := start(f); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", env, err)
			return
		}
		time.Sleep(length)
		stop()
		f.Close()
	}()
}
