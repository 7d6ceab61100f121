package soak

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseGauges(t *testing.T) {
	for _, tc := range []struct {
		name, page string
		want       Gauges
		err        string
	}{
		{"all three", "# HELP go_goroutines x\ngo_goroutines 12\nprocess_open_fds 9\nprocess_resident_memory_bytes 2.5e+07\nother 1\n",
			Gauges{RSS: 2.5e7, Goroutines: 12, FDs: 9}, ""},
		{"labelled lines are not ours", "go_goroutines{a=\"b\"} 5\ngo_goroutines 3\nprocess_open_fds 1\nprocess_resident_memory_bytes 1\n",
			Gauges{RSS: 1, Goroutines: 3, FDs: 1}, ""},
		{"missing fds", "go_goroutines 12\nprocess_resident_memory_bytes 1\n", Gauges{}, "no process_open_fds"},
		{"bad number", "go_goroutines x\n", Gauges{}, "go_goroutines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := parseGauges(bufio.NewScanner(strings.NewReader(tc.page)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || g != tc.want {
				t.Fatalf("parseGauges = %+v, %v; want %+v", g, err, tc.want)
			}
		})
	}
}

// series builds load samples of one target: value(i) at i seconds.
func series(n int, value func(i int) Gauges) []Sample {
	var out []Sample
	for i := range n {
		out = append(out, Sample{At: time.Duration(i) * time.Second, Phase: PhaseLoad, Gauges: value(i)})
	}
	return out
}

func TestVerdict(t *testing.T) {
	m := Margins{}
	m.setDefaults()
	base := Gauges{RSS: 20 << 20, Goroutines: 15, FDs: 12}
	flat := func(int) Gauges { return Gauges{RSS: 40 << 20, Goroutines: 400, FDs: 210} }
	noisy := func(i int) Gauges { // constant load with jitter: no trend
		return Gauges{RSS: float64(40<<20 + (i%3)*(4<<20)), Goroutines: float64(400 + i%7), FDs: float64(210 - i%5)}
	}
	leakG := func(i int) Gauges { return Gauges{RSS: 40 << 20, Goroutines: float64(400 + i), FDs: 210} }
	leakRSS := func(i int) Gauges { return Gauges{RSS: float64(40<<20 + i*(1<<20)), Goroutines: 400, FDs: 210} }
	ok := Load{Connections: 10, Enters: 10, Chats: 100}
	for _, tc := range []struct {
		name  string
		load  func(int) Gauges
		after Gauges
		l     Load
		fails []string // substrings, one per expected failure
	}{
		{"flat load, back to baseline", flat, Gauges{RSS: 30 << 20, Goroutines: 18, FDs: 13}, ok, nil},
		{"jitter is no trend", noisy, base, ok, nil},
		{"goroutines not back", flat, Gauges{RSS: 30 << 20, Goroutines: 215, FDs: 13}, ok, []string{"go_goroutines 215 after the load"}},
		{"fds not back", flat, Gauges{RSS: 30 << 20, Goroutines: 15, FDs: 40}, ok, []string{"process_open_fds 40 after the load"}},
		{"goroutines grow under load", leakG, base, ok, []string{"go_goroutines grew steadily"}},
		{"memory grows under load", leakRSS, base, ok, []string{"process_resident_memory_bytes grew steadily"}},
		{"clients failing", flat, base, Load{Connections: 10, Enters: 10, Chats: 100, Errors: 5, LastError: "chat: boom"}, []string{"clients failed 5 of 115 steps"}},
		{"nobody connected", flat, base, Load{LastError: "connect: refused"}, []string{"no client got connected: connect: refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			samples := series(100, tc.load)
			samples = append(samples, Sample{At: 100 * time.Second, Phase: PhaseAfter, Gauges: tc.after})
			r := &runner{o: Options{Metrics: []string{"m"}, Margins: m, Warmup: 10 * time.Second},
				res: &Result{Samples: samples, Baseline: []Gauges{base}, Start: start, Load: tc.l}, loadStart: start}
			r.verdict()
			if len(r.res.Failures) != len(tc.fails) {
				t.Fatalf("failures = %q, want %d like %q", r.res.Failures, len(tc.fails), tc.fails)
			}
			for i, want := range tc.fails {
				if !strings.Contains(r.res.Failures[i], want) {
					t.Errorf("failure %d = %q, want it to contain %q", i, r.res.Failures[i], want)
				}
			}
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no gate", Options{Metrics: []string{"x"}}, "no gate"},
		{"no metrics", Options{Gate: "g"}, "no /metrics"},
		{"one room with hops", Options{Gate: "g", Metrics: []string{"x"}, Rooms: 1}, "at least 2 rooms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
