package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// defaultServerNice is how much nicer than the driver a server started by
// bench or calibrate runs. On a machine that the server saturates, the
// driver's timers and receive loops otherwise wait behind the server's
// threads: its sends go out late and its receive timestamps come late, so
// the measurement, not the server, degrades (on the 2-core project machine
// the latency scenario flagged the driver with 0.75 of a core in use, and
// did not at nice +10). Priority only decides who waits when both want a
// CPU: an idle driver leaves every cycle to the server.
const defaultServerNice = 10

// startNiced starts cmd with a scheduling priority nice steps below the
// caller's (nice <= 0: the caller's). A child inherits the priority of the
// thread that forks it, so the fork runs on a locked thread made nicer for
// this one purpose. That thread must outlive the child: a child's
// Pdeathsig fires when the thread that forked it exits. So it parks until
// release is called (after cmd.Wait), then exits with its goroutine (a
// thread cannot take its priority back without privileges). release is
// never nil.
func startNiced(cmd *exec.Cmd, nice int) (release func(), err error) {
	if nice <= 0 {
		return func() {}, cmd.Start()
	}
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the goroutine
		// getpriority(2) returns 20 - nice for the calling thread (who 0)
		cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		if err != nil {
			errc <- fmt.Errorf("getpriority: %w", err)
			return
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, min(20-cur+nice, 19)); err != nil {
			errc <- fmt.Errorf("setpriority: %w", err)
			return
		}
		err = cmd.Start()
		errc <- err
		if err == nil {
			<-done
		}
	}()
	if err := <-errc; err != nil {
		return func() {}, err
	}
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }, nil
}
