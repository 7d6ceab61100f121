package pace

import (
	"testing"
	"time"
)

func TestHintArmed(t *testing.T) {
	h := newHint()
	defer h.close()
	if h.fd < 0 {
		t.Fatal("timerfd_create failed")
	}
	h.arm(time.Hour)
	if got := h.armed(); got <= 59*time.Minute || got > time.Hour {
		t.Fatalf("armed for %v after arm(1h)", got)
	}
	h.arm(time.Minute) // arming again replaces the expiry
	if got := h.armed(); got <= 59*time.Second || got > time.Minute {
		t.Fatalf("armed for %v after arm(1m)", got)
	}
}
