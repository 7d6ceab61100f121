// Package pace owns the driver's open-model waits: a Timer whose wait ends at
// the intended time to within tens of microseconds, not within Go's
// millisecond.
//
// An idle Go process sleeps in the netpoller, and the runtime hands epoll_wait
// its next timer rounded to whole milliseconds (a wait under 1 ms sleeps 1
// ms; 1.7 ms sleeps 1 ms and then 1 ms more). The driver stamps every message
// with its intended send time, so that rounding was charged to the server
// under test: at low load the median send was 0.6 ms late and the latest
// 1.26 ms, as much as a fast server's whole delivery time. On Linux a Timer
// also arms a timerfd that the netpoller watches: it wakes the poller at the
// due time, and the runtime, awake, runs the due Go timer at once. A busy
// process checks its timers at every scheduling round and needs no hint.
package pace

import (
	"context"
	"time"
)

// Timer is a reusable one-shot timer for one goroutine (not safe for
// concurrent use). The zero value is not usable: call NewTimer.
type Timer struct {
	t    *time.Timer
	hint hint
}

// NewTimer returns a stopped Timer. Close releases its descriptor.
func NewTimer() *Timer {
	t := &Timer{t: time.NewTimer(time.Hour)}
	t.t.Stop()
	t.hint = newHint()
	return t
}

// Wait returns after d, or early with ctx's error when ctx ends first. A d
// of zero or less returns at once (with ctx's error, if any).
func (t *Timer) Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t.hint.arm(d)
	t.t.Reset(d)
	select {
	case <-t.t.C:
		return nil
	case <-ctx.Done():
		t.t.Stop()
		return ctx.Err()
	}
}

// Close stops the timer and releases its descriptor.
func (t *Timer) Close() {
	t.t.Stop()
	t.hint.close()
}

// Sleep returns after d, or early with ctx's error when ctx ends first,
// without Timer's sub-millisecond hint: for waits whose millisecond does
// not matter (phase lengths, a common start). A d of zero or less returns at
// once (with ctx's error, if any).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
