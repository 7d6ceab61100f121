package proc

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

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
		cur, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
		if err != nil {
			errc <- fmt.Errorf("getpriority: %w", err)
			return
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, min(20-cur+nice, 19)); err != nil {
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
