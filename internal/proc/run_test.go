package proc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// Run runs a child to completion, its output as it is in the log, and stops
// it (SIGTERM) when the context ends first.
func TestRun(t *testing.T) {
	tests := []struct {
		name, script string
		timeout      time.Duration
		errHas       string
	}{
		{"ok", "echo done", time.Minute, ""},
		{"fails", "echo broke >&2; exit 3", time.Minute, "exit status 3"},
		{"stopped at the deadline", "trap 'echo stopping; exit 0' TERM; echo running; while :; do sleep 0.05; done", 300 * time.Millisecond, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			p, err := Run(ctx, Options{Role: "bench", Path: "/bin/sh", Args: []string{"-c", tc.script}, Log: &log, NoPrefix: true, StopTimeout: 5 * time.Second})
			if p == nil {
				t.Fatalf("Run: did not start: %v", err)
			}
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("Run: %v, want error %q", err, tc.errHas)
			}
			if strings.Contains(tc.name, "stopped") && !strings.Contains(log.String(), "stopping\n") {
				t.Errorf("log %q: the child did not get SIGTERM", log.String())
			}
		})
	}
}
