package testwait

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	for _, tt := range []struct {
		name    string
		after   int // check succeeds on this call; 0: never
		d       time.Duration
		timeout bool
	}{
		{"at once", 1, time.Second, false},
		{"after a few polls", 4, 5 * time.Second, false},
		{"never", 0, 20 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			start := time.Now()
			err := For(tt.d, func() error {
				calls++
				if calls == tt.after {
					return nil
				}
				return fmt.Errorf("%d calls", calls)
			})
			took := time.Since(start)
			switch {
			case !tt.timeout && err != nil:
				t.Fatalf("err %v after %d calls", err, calls)
			case !tt.timeout && calls != tt.after:
				t.Fatalf("%d calls, want %d", calls, tt.after)
			case tt.timeout && (err == nil || !strings.HasPrefix(err.Error(), "not within 20ms: ") || took < tt.d):
				t.Fatalf("err %v after %v, want a timeout after %v", err, took, tt.d)
			}
			if tt.timeout && err.Error() != fmt.Sprintf("not within 20ms: %d calls", calls) {
				t.Fatalf("err %q does not carry the last check's error (%d calls)", err, calls)
			}
		})
	}
}

func TestForWraps(t *testing.T) {
	sentinel := errors.New("still busy")
	if err := For(time.Millisecond, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("err %v does not wrap the check's error", err)
	}
}
