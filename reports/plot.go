package reports

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/chatbench/chatbench/bench/metrics"
)

var errNoData = errors.New("reports: no samples to plot")

// Figure sizes (vgimg renders at 96 dpi: 768 x 480 and 768 x 672 pixels).
const (
	figW       = 8 * vg.Inch
	figH       = 5 * vg.Inch
	seriesH    = 7 * vg.Inch
	legendPad  = 6 // points between the plot and the legend strip
	legendKeep = 3 // points of margin right of the legend
)

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

// legend is a plot legend drawn in a strip right of the plot, never over
// the data.
type legend struct {
	plot.Legend
	n int
}

func newLegend() *legend {
	l := &legend{Legend: plot.NewLegend()}
	l.Left, l.Top = true, true
	return l
}

func (l *legend) add(name string, thumbs ...plot.Thumbnailer) {
	l.Add(name, thumbs...)
	l.n++
}

// width is the strip the legend needs (0 without entries).
func (l *legend) width() vg.Length {
	if l.n == 0 {
		return 0
	}
	c := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: figW, Y: figH}}}
	return l.Rectangle(c).Size().X + legendPad + legendKeep
}

// split returns the canvas for the plot and draws the legend right of it,
// top aligned below a title of height top.
func (l *legend) split(c draw.Canvas, top vg.Length) draw.Canvas {
	w := l.width()
	if w == 0 {
		return c
	}
	strip := draw.Crop(c, c.Size().X-w+legendPad, -legendKeep, 0, -top)
	l.Draw(strip)
	return draw.Crop(c, 0, -w, 0, 0)
}

// Caption is the small print under a figure: the command that made it, the
// machine and the date, so that a figure copied into a write-up still says
// where it comes from. Empty: none.
type Caption string

// RunCaption is the caption of a run's figures.
func RunCaption(s *metrics.Summary) Caption {
	return Caption(fmt.Sprintf("%s · %s, %d cores · %s", RunCommand(s), orDash(s.Machine.CPUModel), s.Machine.Cores,
		s.Start.UTC().Format("2006-01-02 15:04 MST")))
}

// SweepCaption is the caption of a sweep's figures.
func SweepCaption(sw *metrics.Sweep) Caption {
	return Caption(fmt.Sprintf("%s · %s, %d cores · %s", orDash(sw.Command), orDash(sw.Machine.CPUModel), sw.Machine.Cores,
		sw.Start.UTC().Format("2006-01-02 15:04 MST")))
}

// pngOf draws onto a white w x h image, with the caption at the bottom,
// and encodes it as PNG.
func pngOf(w, h vg.Length, caption Caption, drawFn func(c draw.Canvas)) ([]byte, error) {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	if caption != "" {
		sty := plot.New().X.Tick.Label
		sty.Font.Size = vg.Points(7)
		sty.Color = color.Gray{Y: 0x70}
		sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
		text := string(caption)
		if sty.Rectangle(text).Size().X > w-vg.Points(8) { // too long: cut, and say so
			base := []rune(text)
			for len(base) > 20 && sty.Rectangle(string(base)+"...").Size().X > w-vg.Points(8) {
				base = base[:len(base)-4]
			}
			text = string(base) + "..."
		}
		dc.FillText(sty, vg.Point{X: vg.Points(4), Y: vg.Points(3)}, text)
		dc = draw.Crop(dc, 0, 0, sty.Rectangle(text).Size().Y+vg.Points(6), 0)
	}
	drawFn(dc)
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return nil, fmt.Errorf("reports: png: %w", err)
	}
	return b.Bytes(), nil
}

// singlePNG renders one plot with its legend in the right strip.
func singlePNG(p *plot.Plot, l *legend, w, h vg.Length, caption Caption) ([]byte, error) {
	return pngOf(w, h, caption, func(c draw.Canvas) {
		p.Draw(l.split(c, titleHeight(p)))
	})
}

func titleHeight(p *plot.Plot) vg.Length {
	if p.Title.Text == "" {
		return 0
	}
	return p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
}

func writePNG(path string, data []byte, err error) error {
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return nil
}

// Curve is one latency distribution to draw by percentile.
type Curve struct {
	Label string
	Hist  *hdr.Histogram // microseconds
}

// percentileXYs samples the latency-by-percentile curve of a histogram: x
// is 1/(1-q) on a log grid up to 99.999% (or the sample count, whichever
// is smaller), y milliseconds.
func percentileXYs(h *hdr.Histogram) (plotter.XYs, error) {
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
		xys = append(xys, plotter.XY{X: x, Y: math.Max(float64(h.ValueAtQuantile(q)), 1) / 1000})
	}
	return xys, nil
}

// RunCurves are the histograms of op of each run that has samples of it.
func RunCurves(op string, runs []Run) []Curve {
	var out []Curve
	for _, r := range runs {
		h, err := r.Summary.Histogram(op)
		if err != nil || h.TotalCount() == 0 {
			continue
		}
		out = append(out, Curve{Label: r.Label, Hist: h})
	}
	return out
}

// PercentilePNG draws latency by percentile, one line per curve: a log x
// axis labelled 50%, 90%, 99%, ..., y in milliseconds (log with 1-2-5
// ticks when the tail reaches 8 times a median or more, else linear from
// 0), the legend right of the plot.
func PercentilePNG(title string, curves []Curve, caption Caption) ([]byte, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = PercentileTicks{}
	p.Add(plotter.NewGrid())
	l := newLegend()
	lo, hi := math.Inf(1), 0.0
	for i, c := range curves {
		xys, err := percentileXYs(c.Hist)
		if err != nil {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		line.Dashes = plotutil.Dashes(i / 7)
		p.Add(line)
		l.add(c.Label, line)
		lo, hi = math.Min(lo, float64(c.Hist.ValueAtQuantile(50))/1000), math.Max(hi, xys[len(xys)-1].Y)
	}
	if l.n == 0 {
		return nil, errNoData
	}
	// Log when the tail spans a decade above the median: then the median
	// and the tail both stay readable (the axis starts a decade below the
	// lowest median; a few faster samples at 0% may fall off it).
	if hi/lo >= 8 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = msTicks{}
		p.Y.Min, p.Y.Max = lo/10, hi*1.25
	} else {
		p.Y.Min = 0
		p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
			t := plot.DefaultTicks{}.Ticks(min, max)
			for i := range t {
				if t[i].Label != "" {
					t[i].Label = msLabel(t[i].Value)
				}
			}
			return t
		})
	}
	return singlePNG(p, l, figW, figH, caption)
}

// PercentilePlot writes a PNG of an operation's latency by percentile, one
// line per run (overlaid for comparisons). Runs without samples of op are
// skipped; errNoData when none has any.
func PercentilePlot(path, op string, runs []Run) error {
	data, err := PercentilePNG(percentileTitle(op, runs), RunCurves(op, runs), runsCaption(runs))
	return writePNG(path, data, err)
}

func percentileTitle(op string, runs []Run) string {
	if len(runs) == 1 {
		return fmt.Sprintf("%s: %s latency by percentile", runs[0].Summary.Scenario, op)
	}
	return op + " latency by percentile"
}

// phaseBands shades the phases of a run behind the series, each named at
// its top left.
type phaseBands struct {
	spans  []band
	labels bool
}

type band struct {
	x0, x1 float64
	name   string
}

var bandColors = []color.Color{
	color.RGBA{R: 0xee, G: 0xf2, B: 0xf8, A: 0xff},
	color.RGBA{R: 0xf8, G: 0xf3, B: 0xe8, A: 0xff},
}

func (b phaseBands) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := p.X.Tick.Label
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YTop
	sty.Color = color.Gray{Y: 0x60}
	for i, s := range b.spans {
		x0, x1 := math.Max(s.x0, p.X.Min), math.Min(s.x1, p.X.Max)
		if x1 <= x0 {
			continue
		}
		r := vg.Rectangle{Min: vg.Point{X: trX(x0), Y: c.Min.Y}, Max: vg.Point{X: trX(x1), Y: c.Max.Y}}
		c.SetColor(bandColors[i%len(bandColors)])
		c.Fill(r.Path())
		if b.labels && r.Size().X > sty.Rectangle(s.name).Size().X+vg.Points(4) {
			c.FillText(sty, vg.Point{X: r.Min.X + vg.Points(2), Y: r.Max.Y - vg.Points(2)}, s.name)
		}
	}
}

func phasesOf(s *metrics.Summary) phaseBands {
	b := phaseBands{labels: true}
	for _, ph := range s.Phases {
		b.spans = append(b.spans, band{x0: ph.Start.Sub(s.Start).Seconds(), x1: ph.End.Sub(s.Start).Seconds(), name: ph.Name})
	}
	return b
}

// fineUpTo is the longest run whose delivered/s is drawn from its 100 ms
// buckets (Summary.Fine): a short burst keeps its shape; longer runs read
// better per second.
const fineUpTo = 120 * time.Second

// rateXYs is a run's delivered/s as steps: from the 100 ms buckets for
// runs up to fineUpTo that have them, else per second.
func rateXYs(s *metrics.Summary) (plotter.XYs, bool) {
	// Buckets that do not cover most of the run were not sampled through it.
	if f := s.Fine; f != nil && f.IntervalMs > 0 && s.DurationSeconds <= fineUpTo.Seconds() &&
		float64(len(f.Delivered)*int(f.IntervalMs)) >= 800*s.DurationSeconds {
		iv := float64(f.IntervalMs) / 1000
		xys := make(plotter.XYs, 0, 2*len(f.Delivered))
		for i, n := range f.Delivered {
			y := float64(n) / iv
			xys = append(xys, plotter.XY{X: float64(i) * iv, Y: y}, plotter.XY{X: float64(i+1) * iv, Y: y})
		}
		return xys, true
	}
	xys := make(plotter.XYs, 0, 2*len(s.Series))
	prev := 0.0
	for _, x := range s.Series {
		// A short (last) interval counts as a second, as for
		// peak_deliveries_per_s: no spike from a partial second.
		iv := max(x.ElapsedS-prev, 1)
		y := float64(x.Delivered) / iv
		xys = append(xys, plotter.XY{X: prev, Y: y}, plotter.XY{X: x.ElapsedS, Y: y})
		prev = x.ElapsedS
	}
	return xys, false
}

// SeriesPNG draws the run(s) over time: delivered/s on top (100 ms buckets
// for short runs, else per second), delivery p99 (solid) and p50 (dashed)
// per second below, the phases of a single run shaded behind both, one
// color per run, the legend right of the plots.
func SeriesPNG(runs []Run) ([]byte, error) {
	caption := runsCaption(runs)
	top, bottom := plot.New(), plot.New()
	top.Y.Label.Text = "deliveries/s"
	top.Y.Min = 0
	top.Y.Tick.Marker = compactTicks{}
	bottom.Title.Text = "delivery latency per second: p99 (solid), p50 (dashed)"
	bottom.Y.Label.Text = "latency (ms)"
	bottom.X.Label.Text = "seconds since start"
	bottom.Y.Min = 0
	if len(runs) == 1 {
		bands := phasesOf(runs[0].Summary)
		top.Add(bands)
		bands.labels = false
		bottom.Add(bands)
	}
	for _, p := range []*plot.Plot{top, bottom} {
		p.Add(plotter.NewGrid())
	}
	l := newLegend()
	plotted, fine := 0, true
	xmax := 0.0
	for i, r := range runs {
		s := r.Summary
		if len(s.Series) == 0 && s.Fine == nil {
			continue
		}
		rate, f := rateXYs(s)
		fine = fine && f
		color := plotutil.Color(i)
		line, err := plotter.NewLine(rate)
		if err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		line.Color, line.Width = color, vg.Points(1.5)
		top.Add(line)
		l.add(r.Label, line)
		xmax = math.Max(xmax, s.DurationSeconds)
		var p99, p50 plotter.XYs
		for _, x := range s.Series {
			if x.Delivered > 0 {
				p99 = append(p99, plotter.XY{X: x.ElapsedS, Y: float64(x.DeliveryP99Us) / 1000})
				p50 = append(p50, plotter.XY{X: x.ElapsedS, Y: float64(x.DeliveryP50Us) / 1000})
			}
		}
		if len(p99) > 0 {
			l99, lp, err := plotter.NewLinePoints(p99)
			if err != nil {
				return nil, fmt.Errorf("reports: %w", err)
			}
			l99.Color, l99.Width = color, vg.Points(1.5)
			lp.Color, lp.Radius = color, vg.Points(2)
			l50, err := plotter.NewLine(p50)
			if err != nil {
				return nil, fmt.Errorf("reports: %w", err)
			}
			l50.Color, l50.Dashes = color, []vg.Length{vg.Points(4), vg.Points(3)}
			bottom.Add(l99, lp, l50)
		}
		plotted++
	}
	if plotted == 0 {
		return nil, errNoData
	}
	top.Title.Text = "delivered messages per second"
	if fine {
		top.Title.Text += " (in 100 ms buckets)"
	}
	if len(runs) == 1 {
		top.Title.Text = runs[0].Summary.Scenario + ": " + top.Title.Text + ", phases shaded"
	}
	top.Y.Max *= 1.08 // the top of a flat burst stays off the frame
	top.X.Tick.Marker, bottom.X.Tick.Marker = secondsTicks{}, secondsTicks{}
	// Both plots share the time axis.
	top.X.Min, bottom.X.Min = 0, 0
	top.X.Max = math.Max(math.Max(top.X.Max, bottom.X.Max), xmax)
	bottom.X.Max = top.X.Max
	return pngOf(figW, seriesH, caption, func(c draw.Canvas) {
		c = l.split(c, titleHeight(top))
		tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
			PadRight: vg.Points(8), PadY: vg.Points(10)}
		canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, c)
		top.Draw(canvases[0][0])
		bottom.Draw(canvases[1][0])
	})
}

// runsCaption is the caption of one run's figures, none for comparisons
// (the page around them says which runs they are).
func runsCaption(runs []Run) Caption {
	if len(runs) == 1 {
		return RunCaption(runs[0].Summary)
	}
	return ""
}

// SeriesPlot writes SeriesPNG to path.
func SeriesPlot(path string, runs []Run) error {
	data, err := SeriesPNG(runs)
	return writePNG(path, data, err)
}
