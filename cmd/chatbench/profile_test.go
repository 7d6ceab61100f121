package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseProfileSpec(t *testing.T) {
	tests := []struct {
		spec          string
		prefix        string
		delay, length time.Duration
		errHas        string
	}{
		{spec: "/tmp/p", prefix: "/tmp/p", length: 30 * time.Second},
		{spec: "p,10s", prefix: "p", delay: 10 * time.Second, length: 30 * time.Second},
		{spec: "p,0,5s", prefix: "p", length: 5 * time.Second},
		{spec: "", errHas: "want PREFIX"},
		{spec: ",10s", errHas: "want PREFIX"},
		{spec: "p,1s,2s,3s", errHas: "want PREFIX"},
		{spec: "p,soon", errHas: `delay "soon"`},
		{spec: "p,-1s", errHas: `delay "-1s"`},
		{spec: "p,1s,0s", errHas: `length "0s"`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			prefix, delay, length, err := parseProfileSpec(tc.spec)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if prefix != tc.prefix || delay != tc.delay || length != tc.length {
				t.Errorf("got %q %v %v, want %q %v %v", prefix, delay, length, tc.prefix, tc.delay, tc.length)
			}
		})
	}
}
