package main

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A started server runs nicer than the driver by exactly the asked steps,
// and the driver's own priority does not change.
func TestStartNiced(t *testing.T) {
	self := func() int {
		cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		if err != nil {
			t.Fatal(err)
		}
		return 20 - cur
	}
	before := self()
	for _, step := range []int{0, 3, 10} {
		var out bytes.Buffer
		cmd := exec.Command("nice") // coreutils: prints its niceness
		cmd.Stdout = &out
		release, err := startNiced(cmd, step)
		if err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		release()
		if err != nil {
			t.Fatal(err)
		}
		got, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("nice printed %q", out.String())
		}
		if want := min(before+step, 19); got != want {
			t.Errorf("step %d: child at nice %d, want %d", step, got, want)
		}
	}
	// the thread made nicer is gone; others keep the process's priority
	// (checked on this goroutine's thread, which may be any of them)
	if after := self(); after != before {
		t.Errorf("the driver's thread went from nice %d to %d", before, after)
	}
}
