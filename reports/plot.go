package reports

import (
	"errors"
	"fmt"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var errNoData = errors.New("reports: no samples to plot")

// PercentileTicks labels a log axis of 1/(1-quantile) the way HdrHistogram
// and wrk2 plots do: 0%, 50%, 90%, 99%, 99.9%, 99.99%, ... with unlabelled
// minor ticks in between.
type PercentileTicks struct{}

var percentileLabels = []struct {
	x     float64
	label string
}{
	{1, "0%"}, {2, "50%"}, {10, "90%"}, {100, "99%"}, {1e3, "99.9%"}, {1e4, "99.99%"},
	{1e5, "99.999%"}, {1e6, "99.9999%"},
}

// Ticks implements plot.Ticker.
func (PercentileTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	const eps = 1e-9
	for _, l := range percentileLabels {
		if l.x >= min*(1-eps) && l.x <= max*(1+eps) {
			ticks = append(ticks, plot.Tick{Value: l.x, Label: l.label})
		}
	}
	for decade := 1.0; decade <= max; decade *= 10 {
		for m := 2.0; m < 10; m++ {
			x := m * decade
			if x == 2 || x < min || x > max {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: x})
		}
	}
	return ticks
}

// percentileXYs samples the latency-by-percentile curve of a delivery
// histogram: x is 1/(1-q) on a log grid up to 99.999% (or the sample
// count, whichever is smaller), y milliseconds.
func percentileXYs(r Run, op string) (plotter.XYs, error) {
	h, err := r.Summary.Histogram(op)
	if err != nil {
		return nil, err
	}
	n := h.TotalCount()
	if n == 0 {
		return nil, errNoData
	}
	xmax := math.Max(10, math.Min(1e5, float64(n)))
	const steps = 240
	xys := make(plotter.XYs, 0, steps+1)
	for i := 0; i <= steps; i++ {
		x := math.Pow(xmax, float64(i)/steps)
		q := 100 * (1 - 1/x)
		xys = append(xys, plotter.XY{X: x, Y: float64(h.ValueAtQuantile(q)) / 1000})
	}
	return xys, nil
}

// PercentilePlot writes a PNG of an operation's latency by percentile, one
// line per run (overlaid for comparisons), log x axis labelled in
// percentiles, y in milliseconds. Runs without samples of op are skipped.
func PercentilePlot(path, op string, runs []Run) error {
	p := plot.New()
	p.Title.Text = op + " latency by percentile"
	if len(runs) == 1 {
		p.Title.Text = fmt.Sprintf("%s: %s latency by percentile", runs[0].Summary.Scenario, op)
	}
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = PercentileTicks{}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	// Latency curves rise to the right: the bottom right is free.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Points(8)
	plotted := 0
	for i, r := range runs {
		xys, err := percentileXYs(r, op)
		if err != nil {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("reports: %w", err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.Label, l)
		plotted++
	}
	if plotted == 0 {
		return errNoData
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return nil
}

// SeriesPlot writes a PNG of the per-second series: delivered/s on top,
// delivery p99 (solid) and p50 (dashed) in milliseconds below, against
// seconds since the start, one color per run.
func SeriesPlot(path string, runs []Run) error {
	top, bottom := plot.New(), plot.New()
	top.Title.Text = "delivered messages per second"
	if len(runs) == 1 {
		top.Title.Text = runs[0].Summary.Scenario + ": delivered messages per second"
	}
	top.Y.Label.Text = "deliveries/s"
	top.Y.Min = 0
	bottom.Title.Text = "delivery latency per second: p99 (solid), p50 (dashed)"
	bottom.Y.Label.Text = "latency (ms)"
	bottom.X.Label.Text = "seconds since start"
	bottom.Y.Min = 0
	for _, p := range []*plot.Plot{top, bottom} {
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
	}
	plotted := 0
	for i, r := range runs {
		ser := r.Summary.Series
		if len(ser) == 0 {
			continue
		}
		rate := make(plotter.XYs, len(ser))
		p99 := make(plotter.XYs, 0, len(ser))
		p50 := make(plotter.XYs, 0, len(ser))
		prev := 0.0
		for j, x := range ser {
			// A short (last) interval counts as a second, as for
			// peak_deliveries_per_s: no spike from a partial second.
			iv := max(x.ElapsedS-prev, 1)
			prev = x.ElapsedS
			rate[j] = plotter.XY{X: x.ElapsedS, Y: float64(x.Delivered) / iv}
			if x.Delivered > 0 {
				p99 = append(p99, plotter.XY{X: x.ElapsedS, Y: float64(x.DeliveryP99Us) / 1000})
				p50 = append(p50, plotter.XY{X: x.ElapsedS, Y: float64(x.DeliveryP50Us) / 1000})
			}
		}
		color := plotutil.Color(i)
		l, err := plotter.NewLine(rate)
		if err != nil {
			return fmt.Errorf("reports: %w", err)
		}
		l.Color, l.Width = color, vg.Points(1.5)
		top.Add(l)
		top.Legend.Add(r.Label, l)
		if len(p99) > 0 {
			l99, err := plotter.NewLine(p99)
			if err != nil {
				return fmt.Errorf("reports: %w", err)
			}
			l99.Color, l99.Width = color, vg.Points(1.5)
			l50, err := plotter.NewLine(p50)
			if err != nil {
				return fmt.Errorf("reports: %w", err)
			}
			l50.Color, l50.Dashes = color, []vg.Length{vg.Points(4), vg.Points(3)}
			bottom.Add(l99, l50)
			bottom.Legend.Add(r.Label, l99)
		}
		plotted++
	}
	if plotted == 0 {
		return errNoData
	}
	// Both plots share the time axis.
	top.X.Min = 0
	top.X.Max = math.Max(top.X.Max, bottom.X.Max)
	bottom.X.Min, bottom.X.Max = top.X.Min, top.X.Max
	const w, h = 8 * vg.Inch, 7 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
		PadRight: vg.Points(8), PadY: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("reports: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return nil
}
