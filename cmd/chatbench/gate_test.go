package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad gate and perf flags name the flag and the fix, exit 2, and run
// nothing.
func TestGateAndPerfUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gate", "--candidate", "HEAD"}, "give --baseline REF or --baseline-binary PATH (exactly one)"},
		{[]string{"gate", "--baseline", "HEAD~1", "--baseline-binary", "x", "--candidate", "HEAD"}, "give --baseline REF or --baseline-binary PATH (exactly one)"},
		{[]string{"gate", "--baseline", "HEAD~1"}, "give --candidate REF or --candidate-binary PATH"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--runs", "0"}, "--runs 0: use 1 to 100"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--runs", "8", "--max-runs", "4"}, "--max-runs 4: use --runs (8) to 200"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--min-runs", "9"}, "--min-runs 9: use 2 to --runs (8)"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--alpha", "1.5"}, "--alpha 1.5: use a level between 0 and 1"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--tolerance", "latency=0.1"}, "--tolerance latency=0.1: give metric=fraction"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--tolerance", "deliveries_per_s=5"}, "--tolerance deliveries_per_s=5"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--server-procs", "-1"}, "--server-procs -1"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--driver-pollers", "-1"}, "--driver-pollers -1"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--retries", "11"}, "--retries 11: use 0 to 10"},
		{[]string{"gate", "--baseline", "a", "--candidate", "b", "--scenario", "nosuch"}, `--scenario nosuch: unknown scenario "nosuch"`},
		{[]string{"perf", "--only", "storm,lateny"}, `--only storm,lateny: unknown target "lateny"`},
		{[]string{"perf", "--search-steps", "0"}, "--search-steps 0: use 1 to 10"},
		{[]string{"serve", "--test-delivery-work", "2ms"}, "--test-delivery-work 2ms: use 0 (none) up to 1ms"},
		{[]string{"serve", "--gomaxprocs", "-2"}, "--gomaxprocs -2"},
		{[]string{"bench", "--scenario", "chat", "--target", "127.0.0.1:1", "--serve-flag=--coalesce-max=1ms"}, "--serve-flag --coalesce-max=1ms: only for the server bench starts"},
		{[]string{"bench", "--scenario", "chat", "--serve-flag=coalesce-max"}, `--serve-flag "coalesce-max": give a serve flag with its value`},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("chatbench %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}
