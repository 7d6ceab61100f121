package procstat

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		pid, ppid  int
		cpu        time.Duration
		wantErr    bool
	}{
		{"plain", "1234 (chatbench) S 1200 1234 1200 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0 100 0 0", 1234, 1200, 2800 * time.Millisecond, false},
		{"comm with spaces and parens", "77 (a (b) c) R 5 77 5 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 77, 5, 100 * time.Millisecond, false},
		{"truncated", "77 (x) R 5 77", 0, 0, 0, true},
		{"no comm", "77 x R 5", 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (p.PID != tt.pid || p.PPID != tt.ppid || p.CPU != tt.cpu) {
				t.Fatalf("got %+v, want pid %d ppid %d cpu %v", p, tt.pid, tt.ppid, tt.cpu)
			}
		})
	}
}

func TestRole(t *testing.T) {
	tests := []struct {
		args     []string
		role, id string
	}{
		{[]string{"/bin/chatbench", "serve", "--role", "connector", "--id", "connector-2"}, "connector", "connector-2"},
		{[]string{"/bin/chatbench", "serve", "--topology", "split", "--shards", "2"}, "launcher", ""},
		{[]string{"/bin/chatbench", "serve", "--topology", "single"}, "single", ""},
		{[]string{"/usr/bin/node", "app.js", "serverType=connector", "id=connector-server-1"}, "node:connector", "connector-server-1"},
		{[]string{"/usr/bin/sleep", "10"}, "sleep", ""},
	}
	for _, tt := range tests {
		role, id := Proc{Args: tt.args}.Role()
		if role != tt.role || id != tt.id {
			t.Errorf("%q: got %q %q, want %q %q", tt.args, role, id, tt.role, tt.id)
		}
	}
}

// TestTree: a real child process shows up under this one, and its CPU
// time is never negative between two readings.
func TestTree(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	before, err := Tree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before[0].PID != os.Getpid() {
		t.Fatalf("root first: got %d", before[0].PID)
	}
	found := false
	for _, p := range before {
		if p.PID == cmd.Process.Pid {
			found = true
			if role, _ := p.Role(); role != "sleep" {
				t.Fatalf("child role %q (args %q)", role, p.Args)
			}
		}
	}
	if !found {
		t.Fatalf("child %d not in the tree %+v", cmd.Process.Pid, before)
	}
	after, err := Tree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Used(before, after) {
		if p.CPU < 0 {
			t.Fatalf("negative CPU %+v", p)
		}
	}
	if _, err := Tree(1 << 30); err == nil {
		t.Fatal("no error for a pid that cannot exist")
	}
}
