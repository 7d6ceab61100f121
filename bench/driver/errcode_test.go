package driver

import (
	"context"
	"fmt"
	"testing"

	"github.com/chatbench/chatbench/bench/client"
	"github.com/chatbench/chatbench/bench/metrics"
)

// Each client error lands in its own kind of the summary's errors_by_kind.
func TestErrCode(t *testing.T) {
	stalled := fmt.Errorf("%w: 127.0.0.1:3050 read nothing for the write timeout", client.ErrSendStalled)
	cases := []struct {
		name     string
		err      error
		code     int
		wantKind string
	}{
		{"response", &client.ResponseError{Route: "r", Code: 500}, 500, metrics.KindResponse},
		{"timeout", client.ErrTimeout, 0, metrics.KindTimeout},
		{"deadline", context.DeadlineExceeded, 0, metrics.KindTimeout},
		{"kicked", fmt.Errorf("%w: bye", client.ErrKicked), 0, metrics.KindKicked},
		{"stalled client", stalled, 0, KindStalled},
		// a request in flight when its client stalled: closed, for the stall
		{"request of a stalled client", fmt.Errorf("%w: %w", client.ErrClosed, stalled), 0, KindStalled},
		{"closed", client.ErrClosed, 0, metrics.KindClosed},
		{"canceled dial", &client.StepError{Step: "connect", Err: context.Canceled}, 0, "canceled"},
		{"connect", &client.StepError{Step: "connect", Err: fmt.Errorf("refused")}, 0, metrics.KindDial},
		{"other", fmt.Errorf("garbage"), 0, metrics.KindProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, kind := errCode(tc.err)
			if code != tc.code || kind != tc.wantKind {
				t.Errorf("errCode(%v) = %d, %q, want %d, %q", tc.err, code, kind, tc.code, tc.wantKind)
			}
		})
	}
}
