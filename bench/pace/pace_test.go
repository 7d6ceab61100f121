package pace

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"
)

func TestWaitNeverEarly(t *testing.T) {
	tm := NewTimer()
	defer tm.Close()
	for _, d := range []time.Duration{50 * time.Microsecond, 300 * time.Microsecond, 1700 * time.Microsecond, 3 * time.Millisecond} {
		start := time.Now()
		if err := tm.Wait(context.Background(), d); err != nil {
			t.Fatalf("Wait(%v): %v", d, err)
		}
		if got := time.Since(start); got < d {
			t.Errorf("Wait(%v) returned after %v", d, got)
		}
	}
	if err := tm.Wait(context.Background(), 0); err != nil {
		t.Errorf("Wait(0): %v", err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	tm := NewTimer()
	defer tm.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tm.Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context = %v, want context.Canceled", err)
	}
	if err := tm.Wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(0) on an ended context = %v, want context.Canceled", err)
	}
	// the timer is reusable after a cancelled wait
	if err := tm.Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait after a cancelled wait: %v", err)
	}
}

// BenchmarkWaitLate reports how late Wait returns on an idle process
// (late-us/op median, late-p99-us/op), against the runtime's own timer.
func BenchmarkWaitLate(b *testing.B) {
	for _, bc := range []struct {
		name string
		wait func(ctx context.Context, d time.Duration) error
	}{
		{"pace", func() func(context.Context, time.Duration) error { tm := NewTimer(); return tm.Wait }()},
		{"time.Sleep", func(_ context.Context, d time.Duration) error { time.Sleep(d); return nil }}, // the baseline measured against, not a wait
	} {
		b.Run(bc.name, func(b *testing.B) {
			var late []time.Duration
			d := 300 * time.Microsecond
			for b.Loop() {
				start := time.Now()
				bc.wait(context.Background(), d)
				late = append(late, time.Since(start)-d)
			}
			sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
			b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late-us/op")
			b.ReportMetric(float64(late[len(late)*99/100].Microseconds()), "late-p99-us/op")
		})
	}
}
