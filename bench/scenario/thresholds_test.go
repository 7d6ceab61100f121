package scenario

import (
	"testing"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

func TestThresholdsEvaluate(t *testing.T) {
	s, err := Parse("t.yaml", []byte(`clients: 2
rooms: {count: 1}
phases: [{kind: enter, concurrency: 1}]
thresholds:
  p99_delivery_max: 25ms
  loss_max: 0
  error_rate_max: 0.01
  min_deliveries_per_s: 1000
`))
	if err != nil {
		t.Fatal(err)
	}
	good := &metrics.Summary{
		Ops:              map[string]metrics.OpStats{"delivery": {Count: 10, P99Us: 25000}},
		Counters:         metrics.Counters{Expected: 100, Requests: 1000, Errors: 10},
		DeliveriesPerSec: 1000,
	}
	bad := &metrics.Summary{
		Ops:              map[string]metrics.OpStats{"delivery": {Count: 10, P99Us: 25001}},
		Counters:         metrics.Counters{Expected: 100, Lost: 1, Requests: 1000, Errors: 11},
		DeliveriesPerSec: 999,
	}
	empty := &metrics.Summary{}
	tests := []struct {
		name string
		sum  *metrics.Summary
		pass []bool
	}{
		{"at the limits", good, []bool{true, true, true, true}},
		{"just over", bad, []bool{false, false, false, false}},
		{"no samples", empty, []bool{false, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.Thresholds.Evaluate(tt.sum)
			names := []string{ThresholdP99Delivery, ThresholdLoss, ThresholdErrorRate, ThresholdMinDeliveries}
			if len(res) != 4 {
				t.Fatalf("results %+v", res)
			}
			for i, r := range res {
				if r.Name != names[i] || r.Pass != tt.pass[i] {
					t.Errorf("%d: %+v, want %s pass=%v", i, r, names[i], tt.pass[i])
				}
			}
			if res[0].Limit != float64(25*time.Millisecond/time.Microsecond) || res[0].Unit != "us" {
				t.Errorf("p99 limit %v %s", res[0].Limit, res[0].Unit)
			}
		})
	}
	if got := (Thresholds{}).Evaluate(good); len(got) != 0 {
		t.Fatalf("unset thresholds evaluated: %+v", got)
	}
}
