package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// CHATBENCH_CPUPROFILE=<prefix>[,<delay>[,<length>]] writes a CPU profile of
// any chatbench process (server, driver, bare calibration server) to
// <prefix>-<command>-<pid>.pprof, from <delay> after start for <length>
// (defaults 0 and 30s): `go tool pprof -top bin/chatbench FILE`. Used by the
// perf work (docs/perf.md); a child process inherits the variable.
func init() {
	v := os.Getenv("CHATBENCH_CPUPROFILE")
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
	path := fmt.Sprintf("%s-%s-%d.pprof", parts[0], cmd, os.Getpid())
	go func() {
		time.Sleep(delay)
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "CHATBENCH_CPUPROFILE: %v\n", err)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "CHATBENCH_CPUPROFILE: %v\n", err)
			return
		}
		time.Sleep(length)
		pprof.StopCPUProfile()
		f.Close()
	}()
}
