package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every usage error says what was wrong and exits 2.
func TestUsageErrorsAreExplained(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"serve", "--log-level", "loud"}, `--log-level "loud": use debug, info, warn or error`},
		{[]string{"serve", "stray"}, `unexpected argument "stray"`},
		{[]string{"serve", "--topology", "weird"}, `--topology "weird"`},
		{[]string{"bench", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"report", "--bogus"}, "unknown flag: --bogus"},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("chatbench %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.want)
		}
	}
}
