package proc

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A child dies with its parent (parent-death signal): the parent is this
// test binary started again, and killed with SIGKILL, so it stops nothing.
func TestParentDeath(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent, f, err := StartReady(context.Background(), Options{Role: "parent", Path: exe,
		Env: append(os.Environ(), helperEnv+"=1"), Log: &Buffer{}, ReadyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, k := range []string{"pid", "command"} { // started by Start, by Command
		pid, err := strconv.Atoi(f.Get(k))
		if err != nil {
			parent.Kill()
			t.Fatalf("READY fields %v: %v", f, err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		if !alive(pid) {
			t.Fatalf("child %d not running", pid)
		}
		pids = append(pids, pid)
	}
	parent.Kill()
	for _, pid := range pids {
		eventually(t, "child "+strconv.Itoa(pid)+" dies with its parent", func() bool {
			// a zombie (reaped by init soon) counts as dead
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			return err != nil || strings.Contains(string(b), ") Z ")
		})
	}
}

// A child runs nicer than the parent by exactly the asked steps, and the
// parent's priority does not change.
func TestNice(t *testing.T) {
	self := func() int {
		cur, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
		if err != nil {
			t.Fatal(err)
		}
		return 20 - cur
	}
	before := self()
	for _, step := range []int{0, 3, 10} {
		t.Run(strconv.Itoa(step), func(t *testing.T) {
			// coreutils nice prints its niceness
			o := Options{Role: "nice", Path: "/bin/sh", Args: []string{"-c", "echo READY nice=$(nice)"}, Nice: step, Log: &bytes.Buffer{}}
			p, f, err := StartReady(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(); err != nil {
				t.Fatal(err)
			}
			got, err := strconv.Atoi(f.Get("nice"))
			if err != nil {
				t.Fatalf("fields %v", f)
			}
			if want := min(before+step, 19); got != want {
				t.Errorf("child at nice %d, want %d", got, want)
			}
		})
	}
	// the thread made nicer is gone; others keep the process's priority
	// (checked on this goroutine's thread, which may be any of them)
	if after := self(); after != before {
		t.Errorf("the parent's thread went from nice %d to %d", before, after)
	}
}
