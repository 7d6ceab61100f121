package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

func exprSummary(p99, p999 int64, lost, errs, reqs int64, rate float64) *metrics.Summary {
	return &metrics.Summary{
		Ops: map[string]metrics.OpStats{
			"delivery":       {Count: 100, P50Us: p99 / 4, P99Us: p99, MeanUs: float64(p99) / 5},
			"last_recipient": {Count: 10, P999Us: p999},
		},
		Counters:         metrics.Counters{Expected: 1000, Delivered: 1000 - lost, Lost: lost, Requests: reqs, Errors: errs},
		DeliveriesPerSec: rate,
	}
}

// The examples pass within their limits and breach just over them,
// naming the expression, the limit and the value.
func TestThresholdExpressionsPassAndBreach(t *testing.T) {
	s, err := Load("testdata/thresholds_expr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"delivery.p99 < 50ms", "last_recipient.p99.9 < 200ms", "lost == 0", "errors.rate < 0.1%", "deliveries_per_s > 50000"}
	if len(s.Thresholds.Exprs) != len(want) {
		t.Fatalf("exprs %+v", s.Thresholds.Exprs)
	}
	for i, e := range s.Thresholds.Exprs {
		if e.Text != want[i] || e.Line != 5+i {
			t.Errorf("expr %d: %q line %d, want %q line %d", i, e.Text, e.Line, want[i], 5+i)
		}
	}
	for _, tc := range []struct {
		name string
		sum  *metrics.Summary
		pass []bool
	}{
		{"within", exprSummary(49_999, 199_999, 0, 9, 10_000, 50_001), []bool{true, true, true, true, true}},
		{"at the limits", exprSummary(50_000, 200_000, 1, 10, 10_000, 50_000), []bool{false, false, false, false, false}},
		{"no samples", &metrics.Summary{DeliveriesPerSec: 60_000}, []bool{false, false, true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Thresholds.Evaluate(tc.sum)
			if len(res) != len(want) {
				t.Fatalf("results %+v", res)
			}
			for i, r := range res {
				if r.Name != want[i] || r.Pass != tc.pass[i] {
					t.Errorf("%d: %+v, want %s pass=%v", i, r, want[i], tc.pass[i])
				}
			}
		})
	}
	r := s.Thresholds.Evaluate(exprSummary(72_300, 0, 0, 0, 1, 60_000))[0]
	if r.Limit != 50_000 || r.Actual != 72_300 || r.Unit != "us" {
		t.Errorf("p99 result %+v: want limit 50000 us, actual 72300", r)
	}
	r = s.Thresholds.Evaluate(exprSummary(1, 1, 0, 2, 1000, 60_000))[3]
	if r.Limit != 0.001 || r.Actual != 0.002 || r.Unit != "ratio" || r.Pass {
		t.Errorf("error rate result %+v: want limit 0.001, actual 0.002, failed", r)
	}
}

// Today's names and k6's mapping form (metric: [aggregation op value]) load
// side by side.
func TestThresholdK6Form(t *testing.T) {
	s, err := Load("testdata/thresholds_k6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Thresholds.P99DeliveryMax == nil {
		t.Error("p99_delivery_max lost")
	}
	var got []string
	for _, e := range s.Thresholds.Exprs {
		got = append(got, e.Text)
	}
	want := "delivery.p99 < 50ms|delivery.mean < 10ms|errors.rate < 0.001|lost == 0"
	if strings.Join(got, "|") != want {
		t.Fatalf("exprs %q, want %q", strings.Join(got, "|"), want)
	}
	res := s.Thresholds.Evaluate(exprSummary(30_000, 0, 0, 0, 10, 1))
	if len(res) != 5 || res[0].Name != ThresholdP99Delivery || res[0].Pass {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res[1:] {
		if !r.Pass {
			t.Errorf("%+v failed", r)
		}
	}
}

// An unknown metric or a malformed expression is a load-time error with
// the file, the line and how to fix it.
func TestThresholdLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"threshold_unknown_metric.yaml", []string{"testdata/threshold_unknown_metric.yaml:6", "thresholds[1]", `unknown metric "delivry.p99"`, `no operation "delivry", did you mean "delivery"?`}},
		{"threshold_malformed.yaml", []string{"testdata/threshold_malformed.yaml:6", "thresholds[1]", `malformed threshold "delivery.p99 50ms"`, "METRIC OP VALUE"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParseExprErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"delivery.p99 < 50", "a latency limit needs a unit: write 50ms"},
		{"delivery.p95 < 50ms", "delivery has min, mean, p50, p90, p99, p99.9, max, count"},
		{"delivery < 50ms", "delivery is an operation: name an aggregation, e.g. delivery.p99"},
		{"errors.rate < 5", `"5" is not a rate`},
		{"errors.rate < 150%", `"150%" is not a percentage`},
		{"sent.rate < 0.1", "sent has no .rate; use sent alone"},
		{"lost = 0", "malformed threshold"},
		{"lost == zero", `"zero" is not a number`},
		{"", "malformed threshold"},
		{"p99 < 25ms", `unknown metric "p99"`},
		{"losts == 0", `unknown metric "losts", did you mean "lost"?`},
	} {
		_, err := ParseExpr(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.text, err, tc.want)
		}
	}
	for _, ok := range []string{"delivery.p(99.9) <= 1s", "send_ack.med<5ms", "on_add.max < 800us", "late_sends.rate <= 1%", "peak_deliveries_per_s >= 5e4", "enter.count != 0", "duplicated == 0"} {
		if _, err := ParseExpr(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// Every shipped scenario keeps loading (today's names keep working).
func TestShippedThresholdsStillLoad(t *testing.T) {
	for _, n := range Names() {
		if _, err := Load(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := os.Stat("testdata"); err != nil {
		t.Fatal(err)
	}
}
