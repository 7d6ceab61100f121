package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every usage error says what was wrong and exits 2.
func TestUsageErrorsAreExplained(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"serve", "--log-level", "loud"}, `--log-level "loud": use debug, info, warn or error`},
		{[]string{"serve", "stray"}, `unexpected argument "stray"`},
		{[]string{"serve", "--topology", "weird"}, `--topology "weird"`},
		{[]string{"serve", "--max-package", "-1"}, "--max-package -1: use a positive size"},
		{[]string{"serve", "--max-queue", "-5"}, "--max-queue -5"},
		{[]string{"serve", "--sndbuf", "100"}, "--sndbuf 100: use at least 4096 bytes"},
		{[]string{"serve", "--sndbuf", "-2"}, "--sndbuf -2"},
		{[]string{"serve", "--write-timeout", "-1s"}, "--write-timeout -1s: use at least 100ms"},
		{[]string{"serve", "--max-content", "-1"}, "--max-content -1"},
		{[]string{"serve", "--heartbeat-timeout", "1ms"}, "must be longer than the heartbeat interval"},
		{[]string{"serve", "--heartbeat", "1500ms"}, "whole seconds"},
		{[]string{"serve", "--connectors", "0"}, "--connectors 0: at least 1"},
		{[]string{"serve", "--gate-port", "70000"}, "--gate-port 70000"},
		{[]string{"serve", "--host", "0.0.0.0"}, "add --advertise-host"},
		{[]string{"bench", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"bench", "--scenario", "chat", "--server-nice", "25"}, "--server-nice 25: use 0 (same priority as the driver) to 19"},
		{[]string{"calibrate", "--server-nice", "-1"}, "--server-nice -1: use 0 (same priority as the driver) to 19"},
		{[]string{"perf", "--latency-runs", "0"}, "--latency-runs 0: use 1 to 20"},
		{[]string{"report", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"sweep", "--scenario", "chat", "--connectors", ""}, `--connectors "": empty list`},
		{[]string{"sweep", "--scenario", "chat", "--shards", "1,0"}, `--shards "1,0": a count of 0 runs nothing`},
		{[]string{"sweep", "--scenario", "chat", "--repeat", "0"}, "--repeat 0: must be >= 1"},
		{[]string{"sweep", "--scenario", "chat", "--connectors", "9000"}, "--connectors 9000 with --shards 2: 9004 server processes"},
		{[]string{"sweep", "--scenario", "chat", "--clients", "10000000"}, "--clients 10000000: the driver needs about"},
		{[]string{"sweep", "--scenario", "nosuch"}, "--scenario nosuch"},
		{[]string{"sweep"}, "--scenario is required"},
		{[]string{"sweep", "--scenario", "chat", "--server-nice", "20"}, "--server-nice 20: use 0"},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("chatbench %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}
