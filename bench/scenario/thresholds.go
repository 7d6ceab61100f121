package scenario

import (
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// Threshold names, as in the YAML file and in summary.json.
const (
	ThresholdP99Delivery   = "p99_delivery_max"
	ThresholdLoss          = "loss_max"
	ThresholdErrorRate     = "error_rate_max"
	ThresholdMinDeliveries = "min_deliveries_per_s"
)

// Evaluate checks every set threshold against a run summary, in a fixed
// order (p99_delivery_max, loss_max, error_rate_max, min_deliveries_per_s),
// then the expressions in file order (each named by its text).
// A p99 threshold fails when the run has no delivery samples.
func (t Thresholds) Evaluate(s *metrics.Summary) []metrics.ThresholdResult {
	var out []metrics.ThresholdResult
	if t.P99DeliveryMax != nil {
		limit := float64(*t.P99DeliveryMax / time.Microsecond)
		d, ok := s.Ops[metrics.OpNames()[metrics.OpDelivery]]
		actual := float64(d.P99Us)
		out = append(out, metrics.ThresholdResult{Name: ThresholdP99Delivery, Limit: limit, Actual: actual,
			Unit: "us", Pass: ok && d.Count > 0 && actual <= limit})
	}
	if t.LossMax != nil {
		a := s.LossRatio()
		out = append(out, metrics.ThresholdResult{Name: ThresholdLoss, Limit: *t.LossMax, Actual: a,
			Unit: "ratio", Pass: a <= *t.LossMax})
	}
	if t.ErrorRateMax != nil {
		a := s.ErrorRate()
		out = append(out, metrics.ThresholdResult{Name: ThresholdErrorRate, Limit: *t.ErrorRateMax, Actual: a,
			Unit: "ratio", Pass: a <= *t.ErrorRateMax})
	}
	if t.MinDeliveriesPerSec != nil {
		a := s.DeliveriesPerSec
		out = append(out, metrics.ThresholdResult{Name: ThresholdMinDeliveries, Limit: *t.MinDeliveriesPerSec,
			Actual: a, Unit: "1/s", Pass: a >= *t.MinDeliveriesPerSec})
	}
	for _, e := range t.Exprs {
		out = append(out, e.Check(s))
	}
	return out
}
