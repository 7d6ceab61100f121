// Package testwait is how tests wait for something to happen: they poll a
// condition until it holds or a deadline passes, instead of sleeping for a
// guessed time. The condition decides; the poll interval only paces it (1 ms
// at first, growing to 50 ms, so a slow condition such as a /metrics scrape
// is not hammered).
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// maxInterval is the longest pause between two checks.
const maxInterval = 50 * time.Millisecond

// For calls check until it returns nil, or until d has passed; then it
// returns check's last error, saying how long it waited. It does not need
// a *testing.T, so a test's goroutine may use it.
func For(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	interval := time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", d, err)
		}
		time.Sleep(interval) // pacing the poll: the condition decides, not the sleep
		interval = min(2*interval, maxInterval)
	}
}

// Until is For that fails t (t.Fatal) when d passes first.
func Until(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	if err := For(d, check); err != nil {
		t.Fatal(err)
	}
}

// True is Until for a condition without a state worth reporting: on a
// timeout the error names what was awaited.
func True(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, d, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("%s", what)
	})
}
