package reports

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/chatbench/chatbench/bench/metrics"
)

// Files a sweep report writes into the sweep directory.
const (
	ScalingConnectorsPlot = "scaling-connectors.png"
	ScalingShardsPlot     = "scaling-shards.png"
	EfficiencyPlot        = "cpu-efficiency.png"
	CompareLatencyPlot    = "compare-latency.png"
	CompareRatePlot       = "compare-throughput.png"
)

// LoadSweep reads sweep.json of a sweep directory.
func LoadSweep(dir string) (*metrics.Sweep, error) { return metrics.ReadSweep(dir) }

// byTopology are a sweep's configurations of one topology, and the single
// baseline if it ran.
func splitConfigs(sw *metrics.Sweep, topology string) []metrics.SweepConfig {
	var out []metrics.SweepConfig
	for _, c := range sw.Configs {
		if c.Topology == topology && c.Runs > c.Failed {
			out = append(out, c)
		}
	}
	return out
}

func baseline(sw *metrics.Sweep) (metrics.SweepConfig, bool) {
	c, ok := sw.Config("single")
	return c, ok && c.Runs > c.Failed
}

// scalingPanel plots metric (deliveries/s or p99 ms) of every split and
// pomelo configuration against axis ("connectors" or "shards"), one line
// per value of the other count, with min..max whiskers for deliveries/s,
// the single baseline as a dashed gray line and the machine's core count
// as a dotted vertical line.
func scalingPanel(sw *metrics.Sweep, axis string, p99 bool, l *legend) *plot.Plot {
	p := plot.New()
	p.Add(plotter.NewGrid())
	p.X.Label.Text = axis
	other := "shards"
	if axis == "shards" {
		other = "connectors"
	}
	xy := func(c metrics.SweepConfig) (x, series int) {
		if axis == "connectors" {
			return c.Connectors, c.Shards
		}
		return c.Shards, c.Connectors
	}
	val := func(c metrics.SweepConfig) float64 {
		if p99 {
			return float64(c.P99Us) / 1000
		}
		return c.DeliveriesPerSec
	}
	if p99 {
		p.Y.Label.Text = "delivery p99 (ms)"
	} else {
		p.Y.Label.Text = rateLabel(sw) + " (median, min-max)"
		p.Y.Tick.Marker = compactTicks{}
	}
	p.Y.Min = 0
	xs := map[int]bool{}
	idx := 0
	for _, top := range []string{"split", "pomelo"} {
		groups := map[int][]metrics.SweepConfig{}
		for _, c := range splitConfigs(sw, top) {
			x, g := xy(c)
			xs[x] = true
			groups[g] = append(groups[g], c)
		}
		keys := make([]int, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			cs := groups[k]
			sort.Slice(cs, func(i, j int) bool { a, _ := xy(cs[i]); b, _ := xy(cs[j]); return a < b })
			pts := make(plotter.XYs, len(cs))
			errs := make(plotter.YErrors, len(cs))
			for i, c := range cs {
				x, _ := xy(c)
				pts[i] = plotter.XY{X: float64(x), Y: val(c)}
				if !p99 {
					errs[i].Low, errs[i].High = c.DeliveriesPerSec-c.DeliveriesPerSecMin, c.DeliveriesPerSecMax-c.DeliveriesPerSec
				}
			}
			line, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				continue
			}
			col := plotutil.Color(idx)
			line.Color, line.Width = col, vg.Points(2)
			sc.Color, sc.Shape, sc.Radius = col, draw.CircleGlyph{}, vg.Points(3)
			if top == "pomelo" {
				line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
				sc.Shape = draw.BoxGlyph{}
			}
			p.Add(line, sc)
			if !p99 {
				if eb, err := plotter.NewYErrorBars(struct {
					plotter.XYs
					plotter.YErrors
				}{pts, errs}); err == nil {
					eb.Color = col
					p.Add(eb)
				}
			}
			if l != nil {
				l.add(fmt.Sprintf("%s, %d %s", top, k, plural(k, other)), line, sc)
			}
			idx++
		}
	}
	if b, ok := baseline(sw); ok && len(xs) > 0 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for x := range xs {
			lo, hi = math.Min(lo, float64(x)), math.Max(hi, float64(x))
		}
		if lo == hi {
			lo, hi = lo-0.5, hi+0.5
		}
		bl, err := plotter.NewLine(plotter.XYs{{X: lo, Y: val(b)}, {X: hi, Y: val(b)}})
		if err == nil {
			bl.Color, bl.Width, bl.Dashes = color.Gray{Y: 0x55}, vg.Points(1.5), []vg.Length{vg.Points(2), vg.Points(3)}
			p.Add(bl)
			if l != nil {
				l.add("single process", bl)
			}
		}
	}
	if cores := sw.Machine.Cores; cores > 0 {
		p.Add(coreMark{x: float64(cores), label: fmt.Sprintf("%d cores", cores)})
	}
	p.X.Tick.Marker = intTicks{}
	if len(xs) > 0 { // room left and right of the first and last count
		lo, hi := math.Inf(1), math.Inf(-1)
		for x := range xs {
			lo, hi = math.Min(lo, float64(x)), math.Max(hi, float64(x))
		}
		pad := math.Max(0.25, (hi-lo)*0.06)
		p.X.Min, p.X.Max = lo-pad, hi+pad
	}
	return p
}

// rateLabel names a sweep's throughput: burst deliveries/s for storms.
func rateLabel(sw *metrics.Sweep) string {
	for _, r := range sw.Runs {
		if r.OK && r.Rate == metrics.RateBurst {
			return "burst deliveries/s"
		}
	}
	return "deliveries/s"
}

// plural drops the s of "shards" or "connectors" for a count of 1.
func plural(n int, word string) string {
	if n == 1 {
		return strings.TrimSuffix(word, "s")
	}
	return word
}

// coreMark is a dotted vertical line at the machine's core count, with a
// label, when it falls on the axis.
type coreMark struct {
	x     float64
	label string
}

func (m coreMark) Plot(c draw.Canvas, p *plot.Plot) {
	if m.x < p.X.Min || m.x > p.X.Max {
		return
	}
	trX, _ := p.Transforms(&c)
	x := trX(m.x)
	c.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(1),
		Dashes: []vg.Length{vg.Points(1), vg.Points(3)}}, x, c.Min.Y, x, c.Max.Y)
	sty := p.X.Tick.Label
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YTop
	sty.Rotation = math.Pi / 2
	c.FillText(sty, vg.Point{X: x - vg.Points(2), Y: c.Min.Y + vg.Points(4)}, m.label)
}

// intTicks labels whole numbers only (connector and shard counts).
type intTicks struct{}

func (intTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	step := math.Max(1, math.Ceil((max-min)/10))
	for v := math.Ceil(min); v <= max; v += step {
		out = append(out, plot.Tick{Value: v, Label: fmt.Sprint(int(v))})
	}
	return out
}

// ScalingPNG draws deliveries/s (top) and delivery p99 (bottom) against
// axis, "connectors" or "shards": one line per count of the other, the
// single baseline and the machine's core count marked.
func ScalingPNG(sw *metrics.Sweep, axis string) ([]byte, error) {
	if len(splitConfigs(sw, "split"))+len(splitConfigs(sw, "pomelo")) == 0 {
		return nil, errNoData
	}
	l := newLegend()
	top, bottom := scalingPanel(sw, axis, false, l), scalingPanel(sw, axis, true, nil)
	top.Title.Text = fmt.Sprintf("%s: throughput and p99 by %s (%d cores)", sw.Scenario, axis, sw.Machine.Cores)
	for _, p := range []*plot.Plot{top, bottom} {
		p.Y.Max *= 1.1
	}
	top.X.Label.Text = ""
	// One x range for both.
	lo, hi := math.Min(top.X.Min, bottom.X.Min), math.Max(top.X.Max, bottom.X.Max)
	top.X.Min, top.X.Max, bottom.X.Min, bottom.X.Max = lo, hi, lo, hi
	return pngOf(figW, seriesH, SweepCaption(sw), func(c draw.Canvas) {
		c = l.split(c, titleHeight(top))
		tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
			PadRight: vg.Points(8), PadY: vg.Points(10)}
		cs := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, c)
		top.Draw(cs[0][0])
		bottom.Draw(cs[1][0])
	})
}

// barsPNG draws one bar per configuration with an optional min..max
// whisker, values labelled Compact above the bars.
func barsPNG(title, ylabel string, names []string, vals, lows, highs []float64, caption Caption) ([]byte, error) {
	if len(vals) == 0 {
		return nil, errNoData
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Tick.Marker = compactTicks{}
	p.Add(plotter.NewGrid())
	bars, err := plotter.NewBarChart(plotter.Values(vals), vg.Points(math.Min(60, 420/float64(len(vals)))))
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	bars.Color = color.RGBA{R: 0x4c, G: 0x78, B: 0xa8, A: 0xff}
	bars.LineStyle.Width = 0
	p.Add(bars)
	hi := 0.0
	if lows != nil {
		pts := make(plotter.XYs, len(vals))
		errs := make(plotter.YErrors, len(vals))
		for i, v := range vals {
			pts[i] = plotter.XY{X: float64(i), Y: v}
			errs[i].Low, errs[i].High = v-lows[i], highs[i]-v
			hi = math.Max(hi, highs[i])
		}
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err == nil {
			eb.Width = vg.Points(1.5)
			eb.CapWidth = vg.Points(10)
			p.Add(eb)
		}
	}
	labels := make([]string, len(vals))
	pts := make(plotter.XYs, len(vals))
	for i, v := range vals {
		labels[i] = Compact(v)
		top := v
		if highs != nil {
			top = highs[i]
		}
		pts[i] = plotter.XY{X: float64(i), Y: top}
		hi = math.Max(hi, v)
	}
	if lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels}); err == nil {
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XCenter
		}
		lb.Offset = vg.Point{Y: vg.Points(4)}
		p.Add(lb)
	}
	p.Y.Min, p.Y.Max = 0, hi*1.15
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(vals))-0.4 // whole bars, with a margin
	if len(names) > 5 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	return singlePNG(p, newLegend(), figW, figH, caption)
}

// okConfigs are the configurations with at least one successful run.
func okConfigs(sw *metrics.Sweep) []metrics.SweepConfig {
	var out []metrics.SweepConfig
	for _, c := range sw.Configs {
		if c.Runs > c.Failed {
			out = append(out, c)
		}
	}
	return out
}

// CompareRatePNG draws each configuration's median deliveries/s as a bar
// with its min..max spread over the repeats.
func CompareRatePNG(sw *metrics.Sweep) ([]byte, error) {
	var names []string
	var vals, lows, highs []float64
	for _, c := range okConfigs(sw) {
		names = append(names, c.Name)
		vals, lows, highs = append(vals, c.DeliveriesPerSec), append(lows, c.DeliveriesPerSecMin), append(highs, c.DeliveriesPerSecMax)
	}
	return barsPNG(fmt.Sprintf("%s: %s, median of %d round(s), whiskers min-max", sw.Scenario, rateLabel(sw), sw.Repeat), rateLabel(sw), names, vals, lows, highs, SweepCaption(sw))
}

// EfficiencyPNG draws deliveries per server CPU second per configuration:
// on a machine with few cores a flat throughput curve is the machine; this
// says what each configuration costs.
func EfficiencyPNG(sw *metrics.Sweep) ([]byte, error) {
	var names []string
	var vals []float64
	for _, c := range okConfigs(sw) {
		if c.DeliveriesPerServerCPUS > 0 {
			names = append(names, c.Name)
			vals = append(vals, c.DeliveriesPerServerCPUS)
		}
	}
	return barsPNG(fmt.Sprintf("%s: deliveries per server CPU second (all server processes, %d cores)", sw.Scenario, sw.Machine.Cores),
		"deliveries per CPU second", names, vals, nil, nil, SweepCaption(sw))
}

// SweepCurves are the merged delivery histograms of the configurations.
func SweepCurves(sw *metrics.Sweep) []Curve {
	var out []Curve
	for _, c := range okConfigs(sw) {
		if c.Histogram == "" {
			continue
		}
		h, err := hdr.Decode([]byte(c.Histogram))
		if err != nil || h.TotalCount() == 0 {
			continue
		}
		out = append(out, Curve{Label: c.Name, Hist: h})
	}
	return out
}

// SweepTables are the configuration table and the run table (failed runs
// marked with their error, links to each run's report relative to the
// sweep directory).
func SweepTables(sw *metrics.Sweep) []Table {
	cfg := Table{Title: "configurations", Header: []string{"configuration", "runs", "failed", "deliveries/s", "min", "max", "p50", "p99", "p99.9",
		"lost", "server CPU s", "driver CPU s", "deliveries / server CPU s", "busiest 100 ms, per s"},
		Note: "deliveries/s: median over the successful runs; percentiles: of the runs' merged delivery histograms; CPU seconds: mean per run; busiest 100 ms: median of the runs' best 100 ms bucket"}
	for _, c := range sw.Configs {
		cfg.Rows = append(cfg.Rows, Row{Cells: []string{c.Name, fmt.Sprint(c.Runs), fmt.Sprint(c.Failed), Rate(c.DeliveriesPerSec),
			Rate(c.DeliveriesPerSecMin), Rate(c.DeliveriesPerSecMax), Us(c.P50Us), Us(c.P99Us), Us(c.P999Us), Count(c.Lost),
			fmt.Sprintf("%.1f", c.ServerCPUSeconds), fmt.Sprintf("%.1f", c.DriverCPUSeconds), Compact(c.DeliveriesPerServerCPUS), Compact(c.PeakFineDeliveriesPerS)},
			Class: configClass(c)})
	}
	runs := Table{Title: "runs, in the order they ran", Header: []string{"#", "configuration", "round", "result", "deliveries/s", "p99", "lost", "server CPU s", "driver CPU s", "report"}}
	for i, r := range sw.Runs {
		result := "ok"
		switch {
		case !r.OK:
			result = "FAILED: " + r.Error
		case r.DriverBound:
			result = "driver-bound"
		case len(r.ThresholdsFailed) > 0:
			result = "thresholds failed: " + strings.Join(r.ThresholdsFailed, ", ")
		}
		link := "-"
		if r.Dir != "" {
			link = r.Dir + "/" + HTMLFile
		}
		runs.Rows = append(runs.Rows, Row{Cells: []string{fmt.Sprint(i + 1), r.Config, fmt.Sprint(r.Round), result, Rate(r.DeliveriesPerSec),
			Us(r.P99Us), Count(r.Lost), fmt.Sprintf("%.1f", r.ServerCPUSeconds), fmt.Sprintf("%.1f", r.DriverCPUSeconds), link},
			Class: classIf(!r.OK, "fail") + classIf(r.OK && (r.DriverBound || len(r.ThresholdsFailed) > 0), "warn")})
	}
	return []Table{cfg, runs}
}

// RenderSweep writes the plots of a sweep (or comparison) directory and its
// report.html, and returns the paths written (report.html last). Plots
// without data (no split configuration, no CPU times) are left out.
func RenderSweep(dir string, sw *metrics.Sweep) ([]string, error) {
	type fig struct {
		file, title string
		render      func() ([]byte, error)
	}
	var scaling, compare []fig
	if len(sw.Connectors) > 1 || len(sw.Shards) > 1 {
		if len(sw.Connectors) > 1 {
			scaling = append(scaling, fig{ScalingConnectorsPlot, "Throughput and p99 against connector count, one line per shard count; dashed gray: the single process; dotted black: the machine's core count",
				func() ([]byte, error) { return ScalingPNG(sw, "connectors") }})
		}
		if len(sw.Shards) > 1 {
			scaling = append(scaling, fig{ScalingShardsPlot, "Throughput and p99 against shard count, one line per connector count",
				func() ([]byte, error) { return ScalingPNG(sw, "shards") }})
		}
	}
	scaling = append(scaling, fig{EfficiencyPlot, "Deliveries per server CPU second: what each configuration costs, independent of how many cores there are",
		func() ([]byte, error) { return EfficiencyPNG(sw) }})
	compare = append(compare,
		fig{CompareRatePlot, "Deliveries per second of each configuration: median bar, min-max whiskers over the rounds",
			func() ([]byte, error) { return CompareRatePNG(sw) }},
		fig{CompareLatencyPlot, "Delivery latency spectra overlaid: each configuration's runs merged",
			func() ([]byte, error) {
				return PercentilePNG(sw.Scenario+": delivery latency by percentile", SweepCurves(sw), SweepCaption(sw))
			}})
	var files []string
	render := func(figs []fig) ([]Image, error) {
		var imgs []Image
		for _, f := range figs {
			data, err := f.render()
			if err == errNoData {
				continue
			}
			path := filepath.Join(dir, f.file)
			if err := writePNG(path, data, err); err != nil {
				return imgs, err
			}
			files = append(files, path)
			imgs = append(imgs, Image{Title: f.title, Alt: f.file, PNG: data})
		}
		return imgs, nil
	}
	scImgs, err := render(scaling)
	if err != nil {
		return files, err
	}
	cmpImgs, err := render(compare)
	if err != nil {
		return files, err
	}
	page := SweepPage(sw, scImgs, cmpImgs)
	path := filepath.Join(dir, HTMLFile)
	if err := writeHTMLFile(path, page); err != nil {
		return files, err
	}
	return append(files, path), nil
}

// SweepPage is the report page of a sweep or comparison.
func SweepPage(sw *metrics.Sweep, scaling, compare []Image) Page {
	p := Page{Title: fmt.Sprintf("chatbench %s: %s", sw.Kind, sw.Scenario)}
	p.Subtitle = fmt.Sprintf("%s · %s · %s · commit %s", orDash(sw.Command), sw.Start.UTC().Format(time.DateTime+" MST"), MachineText(sw.Machine), orDash(sw.Commit))
	failed := sw.Failed()
	p.Verdict = fmt.Sprintf("%d runs, all produced results", len(sw.Runs))
	if len(failed) > 0 {
		p.Verdict, p.Bad = fmt.Sprintf("%d of %d runs FAILED", len(failed), len(sw.Runs)), true
	}
	p.Facts = append(p.Facts, fmt.Sprintf("topologies %s; connectors %s; shards %s; %d round(s), configurations interleaved in each; %.0f s in all",
		strings.Join(sw.Topologies, ", "), ints(sw.Connectors), ints(sw.Shards), sw.Repeat, sw.End.Sub(sw.Start).Seconds()))
	if rateLabel(sw) != "deliveries/s" {
		p.Facts = append(p.Facts, "throughput is the storm's burst rate: deliveries over the storm phases' active windows (first scheduled send to last delivery), what the server sustained while it had work")
	}
	if len(sw.BenchArgs) > 0 {
		p.Facts = append(p.Facts, "every run: chatbench bench "+strings.Join(sw.BenchArgs, " "))
	}
	p.Facts = append(p.Facts, fmt.Sprintf("the machine has %d cores: once the server processes and the driver together want more than that, "+
		"more processes share the same cores and the curve flattens; deliveries per server CPU second show the cost regardless", sw.Machine.Cores))
	if len(failed) > 0 {
		t := Table{Header: []string{"configuration", "round", "error"}}
		for _, r := range failed {
			t.Rows = append(t.Rows, Row{Cells: []string{r.Config, fmt.Sprint(r.Round), r.Error}, Class: "fail"})
		}
		p.Sections = append(p.Sections, Section{Title: "Failed runs", Tables: []Table{t}})
	}
	tables := SweepTables(sw)
	if sw.Kind == metrics.SweepKindCompare {
		p.Sections = append(p.Sections, Section{Title: "Comparison", Images: compare, Tables: tables[:1]})
		if len(scaling) > 0 {
			p.Sections = append(p.Sections, Section{Title: "Cost", Images: scaling})
		}
	} else {
		p.Sections = append(p.Sections, Section{Title: "Scaling", Images: scaling, Tables: tables[:1]},
			Section{Title: "Configurations side by side", Images: compare})
	}
	var links []Link
	for _, r := range sw.Runs {
		if r.Dir != "" {
			links = append(links, Link{Name: fmt.Sprintf("%s round %d", r.Config, r.Round), Href: r.Dir + "/" + HTMLFile, Note: r.Dir})
		}
	}
	links = append(links, Link{Name: metrics.SweepFile, Href: metrics.SweepFile, Note: "everything above, docs/results.md"})
	p.Sections = append(p.Sections, Section{Title: "Runs", Tables: tables[1:]}, Section{Title: "Raw files", Links: links})
	return p
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func configClass(c metrics.SweepConfig) string {
	switch {
	case c.Runs > 0 && c.Failed == c.Runs:
		return "fail"
	case c.Failed > 0 || c.Lost > 0 || c.DriverBound > 0:
		return "warn"
	}
	return ""
}

// WriteSweepText writes the configuration table of a sweep as text, and
// its failed runs.
func WriteSweepText(w io.Writer, sw *metrics.Sweep) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "configuration\truns\tfailed\tdeliveries/s\tmin\tmax\tp50\tp99\tp99.9\tlost\tserver cpu s\tdriver cpu s\tdeliveries/server cpu s\tbusiest 100ms/s\t\n")
	for _, c := range sw.Configs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t\n", c.Name, c.Runs, c.Failed, Rate(c.DeliveriesPerSec),
			Rate(c.DeliveriesPerSecMin), Rate(c.DeliveriesPerSecMax), Us(c.P50Us), Us(c.P99Us), Us(c.P999Us), Count(c.Lost),
			c.ServerCPUSeconds, c.DriverCPUSeconds, Compact(c.DeliveriesPerServerCPUS), Compact(c.PeakFineDeliveriesPerS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range sw.Failed() {
		if _, err := fmt.Fprintf(w, "FAILED %s round %d: %s\n", r.Config, r.Round, r.Error); err != nil {
			return err
		}
	}
	return nil
}
