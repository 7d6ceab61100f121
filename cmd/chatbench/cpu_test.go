package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatbench/chatbench/internal/wsout"
)

func TestNameFromArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/node", "app.js", "env=development"}, "pomelo master"},
		{[]string{"/usr/bin/node", "/tmp/x/app.js", "env=development", "id=connector-server-2", "host=127.0.0.1", "port=4051"}, "connector-server-2"},
		{[]string{"/repo/bin/chatbench", "serve", "--role", "chat", "--id", "chat-1"}, "chat-1"},
		{[]string{"/repo/bin/chatbench", "serve", "--role=connector", "--id=connector-1"}, "connector-1"},
		{[]string{"/repo/bin/chatbench", "serve", "--topology", "split", "--host", "127.0.0.1"}, "chatbench serve --topology split"},
		{[]string{"/repo/bin/chatbench", "serve"}, "chatbench"},
	} {
		if got := nameFromArgs(tc.args); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestTreeCPU: this test process is its own tree; its CPU time only grows,
// its user part is part of it, and the delta names it and writes the CSV.
func TestTreeCPU(t *testing.T) {
	pid := os.Getpid()
	before := treeCPU(pid)
	if _, ok := before[pid]; !ok {
		t.Skip("no /proc here")
	}
	for x, end := 0, time.Now().Add(30*time.Millisecond); time.Now().Before(end); x++ {
		_ = x * x
	}
	d := cpuDelta(before, treeCPU(pid))
	if len(d) != 1 || d[0].pid != pid || d[0].cpu < 0 || !d[0].start || d[0].user < 0 || d[0].user > d[0].cpu {
		t.Fatalf("delta %+v", d)
	}
	dir := t.TempDir()
	var out strings.Builder
	writeCPU(&out, dir, d, time.Second)
	csv, err := os.ReadFile(dir + "/server-cpu.csv")
	if err != nil || !strings.HasPrefix(string(csv), "pid,process,cpu_seconds,cores\n") || !strings.Contains(string(csv), ",total,") {
		t.Fatalf("server-cpu.csv %q, %v", csv, err)
	}
	if !strings.HasPrefix(out.String(), "server cpu ") {
		t.Errorf("printed %q", out.String())
	}
}

// --machine-load picks the writers' load signal; a bad value or a clash
// with --no-load-probe is a usage error that names the flag.
func TestMachineLoadSignal(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		noProbe bool
		want    string // probe (the machine's), none, saturated
		err     string
	}{
		{mode: "probe", want: "probe"},
		{mode: "", want: "probe"},
		{mode: "probe", noProbe: true, want: "none"},
		{mode: "idle", want: "none"},
		{mode: "IDLE", noProbe: true, want: "none"},
		{mode: "saturated", want: "saturated"},
		{mode: "busy", err: `--machine-load "busy": use probe, idle or saturated`},
		{mode: "saturated", noProbe: true, err: "--no-load-probe with --machine-load=saturated"},
	} {
		l, err := machineLoadSignal(tc.mode, tc.noProbe)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q noProbe=%v: error %v, want %q", tc.mode, tc.noProbe, err, tc.err)
			}
			continue
		}
		got := "saturated"
		switch {
		case err != nil:
			got = err.Error()
		case l == nil:
			got = "none"
		case l == wsout.MachineLoad():
			got = "probe"
		case !l.Saturated():
			got = "not saturated"
		}
		if got != tc.want {
			t.Errorf("%q noProbe=%v: %s, want %s", tc.mode, tc.noProbe, got, tc.want)
		}
	}
}
