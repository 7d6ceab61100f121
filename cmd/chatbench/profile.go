package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Profiling, for every command: --cpuprofile=<prefix>[,<delay>[,<length>]]
// writes a CPU profile to <prefix>-<command>-<pid>.pprof, from <delay>
// after start for <length> (defaults 0 and 30s): `go tool pprof -top
// bin/chatbench FILE`. --trace does the same with a Go execution trace
// (<prefix>-<command>-<pid>.trace; `go tool trace -pprof=sched FILE` gives
// where goroutines waited to run).
//
// The chatbench processes a command starts (the server of bench, the
// servers of a split launcher, the bare calibration server) are profiled
// too: the flag reaches them through the environment variables
// CHATBENCH_CPUPROFILE and CHATBENCH_TRACE (same syntax), which a chatbench
// process reads when it starts. Setting a variable by hand profiles every
// chatbench process started with it.
const (
	cpuProfileEnv = "CHATBENCH_CPUPROFILE"
	traceEnv      = "CHATBENCH_TRACE"
)

type profileKind struct {
	flag, env, ext string
	start          func(io.Writer) error
	stop           func()
}

var profileKinds = []profileKind{
	{"cpuprofile", cpuProfileEnv, "pprof", pprof.StartCPUProfile, pprof.StopCPUProfile},
	{"trace", traceEnv, "trace", trace.Start, trace.Stop},
}

// A child started with the variables set profiles itself from the start.
func init() {
	for _, k := range profileKinds {
		if v := os.Getenv(k.env); v != "" {
			if err := startProfile(k, v); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", k.env, err)
			}
		}
	}
}

// addProfileFlags adds --cpuprofile and --trace to a command's flags.
func addProfileFlags(fs *pflag.FlagSet) {
	fs.String("cpuprofile", "", "write a CPU profile of this process and of the chatbench processes it starts: PREFIX[,DELAY[,LENGTH]] -> PREFIX-COMMAND-PID.pprof (default delay 0, length 30s)")
	fs.String("trace", "", "write a Go execution trace the same way: PREFIX[,DELAY[,LENGTH]] -> PREFIX-COMMAND-PID.trace")
}

// applyProfileFlags starts the profiles asked for on fs, unless the
// environment started them already, and passes them on to children.
func applyProfileFlags(fs *pflag.FlagSet) error {
	for _, k := range profileKinds {
		f := fs.Lookup(k.flag)
		if f == nil || !f.Changed {
			continue
		}
		v := f.Value.String()
		if _, _, _, err := parseProfileSpec(v); err != nil {
			return usageErr("--%s %q: %v", k.flag, v, err)
		}
		if os.Getenv(k.env) == "" { // else init has started it
			if err := startProfile(k, v); err != nil {
				return err
			}
		}
		if err := os.Setenv(k.env, v); err != nil {
			return fmt.Errorf("pass --%s to child processes: %w", k.flag, err)
		}
	}
	return nil
}

// parseProfileSpec reads PREFIX[,DELAY[,LENGTH]].
func parseProfileSpec(v string) (prefix string, delay, length time.Duration, err error) {
	parts := strings.Split(v, ",")
	if parts[0] == "" || len(parts) > 3 {
		return "", 0, 0, fmt.Errorf("want PREFIX[,DELAY[,LENGTH]]")
	}
	length = 30 * time.Second
	if len(parts) > 1 {
		if delay, err = time.ParseDuration(parts[1]); err != nil || delay < 0 {
			return "", 0, 0, fmt.Errorf("delay %q: want a duration >= 0 such as 10s", parts[1])
		}
	}
	if len(parts) > 2 {
		if length, err = time.ParseDuration(parts[2]); err != nil || length <= 0 {
			return "", 0, 0, fmt.Errorf("length %q: want a duration > 0 such as 30s", parts[2])
		}
	}
	return parts[0], delay, length, nil
}

func startProfile(k profileKind, v string) error {
	prefix, delay, length, err := parseProfileSpec(v)
	if err != nil {
		return err
	}
	cmd := "none"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	path := fmt.Sprintf("%s-%s-%d.%s", prefix, cmd, os.Getpid(), k.ext)
	go func() {
		time.Sleep(delay)
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "--%s: %v\n", k.flag, err)
			return
		}
		if err := k.start(f); err != nil {
			fmt.Fprintf(os.Stderr, "--%s: %v\n", k.flag, err)
			return
		}
		time.Sleep(length)
		k.stop()
		f.Close()
	}()
	return nil
}
