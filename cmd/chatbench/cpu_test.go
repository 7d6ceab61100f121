package main

import (
	"os"
	"strings"
	"testing"
	"time"
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
// and the delta names it and writes the CSV.
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
	if len(d) != 1 || d[0].pid != pid || d[0].cpu < 0 || !d[0].start {
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
