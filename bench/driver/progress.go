package driver

import (
	"fmt"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// startProgress closes a metrics second every second (and samples the
// 100 ms buckets of Summary.Fine) and, with a Progress
// writer, prints the live line: phase, connected, sent/s, delivered/s, p99
// of the second and the worst second so far, errors.
func (d *driver) startProgress() (stop func()) {
	stopc := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		fine := time.NewTicker(metrics.FineInterval)
		defer fine.Stop()
		var worst, errs int64
		for {
			select {
			case <-stopc:
				return
			case now := <-fine.C:
				d.run.Sample(now)
			case now := <-t.C:
				sec := d.run.Tick(now)
				worst = max(worst, sec.DeliveryP99Us)
				errs += sec.Errors
				if d.opts.Progress == nil {
					continue
				}
				name := ""
				if pi := int(d.phase.Load()); pi < len(d.s.Phases) {
					name = d.s.Phases[pi].Name
				}
				fmt.Fprintf(d.opts.Progress, "%6.0fs %-10s connected %6d | sent/s %7d | delivered/s %8d | p99 %s (worst %s) | errors %d\n",
					now.Sub(d.start).Seconds(), name, d.connected.Load(), sec.Sent, sec.Delivered,
					us(sec.DeliveryP99Us), us(worst), errs)
			}
		}
	}()
	return func() { close(stopc); <-done }
}

func us(v int64) string {
	switch {
	case v <= 0:
		return "-"
	case v < 1000:
		return fmt.Sprintf("%dus", v)
	case v < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(v)/1000)
	}
	return fmt.Sprintf("%.2fs", float64(v)/1e6)
}
