package soak

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteCSV writes every sample: elapsed_s, phase, target (the /metrics URL),
// rss_bytes, goroutines, open_fds.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"elapsed_s", "phase", "target", "rss_bytes", "goroutines", "open_fds"})
	for _, s := range r.Samples {
		_ = cw.Write([]string{
			strconv.FormatFloat(s.At.Seconds(), 'f', 1, 64), s.Phase, r.Targets[s.Target],
			strconv.FormatFloat(s.RSS, 'f', 0, 64), strconv.FormatFloat(s.Goroutines, 'f', 0, 64), strconv.FormatFloat(s.FDs, 'f', 0, 64),
		})
	}
	cw.Flush()
	return cw.Error()
}

// WriteText writes the verdict: per target baseline, final and growth, the
// load, and the failures.
func (r *Result) WriteText(w io.Writer) {
	l := r.Load
	fmt.Fprintf(w, "load: %d connections, %d enters, %d hops, %d chats, %d pushes received, %d failed steps\n",
		l.Connections, l.Enters, l.Hops, l.Chats, l.Pushes, l.Errors)
	if l.LastError != "" {
		fmt.Fprintf(w, "  last failure: %s\n", l.LastError)
	}
	for t, u := range r.Targets {
		fmt.Fprintf(w, "%s\n", u)
		for i, f := range fields {
			var b, fi, g float64
			if t < len(r.Baseline) {
				b = f.get(&r.Baseline[t])
			}
			if t < len(r.Final) {
				fi = f.get(&r.Final[t])
			}
			if t < len(r.Growth) {
				g = f.get(&r.Growth[t])
			}
			peak := 0.0
			for _, s := range r.Samples {
				if s.Target == t {
					peak = max(peak, f.get(&s.Gauges))
				}
			}
			_ = i
			fmt.Fprintf(w, "  %-30s baseline %-10s peak %-10s after %-10s trend under load %s\n", f.name, f.unit(b), f.unit(peak), f.unit(fi), f.unit(g))
		}
	}
	if r.Passed() {
		fmt.Fprintln(w, "PASS: every gauge came back within its margin and none grew steadily under load")
		return
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL: "+f)
	}
}

// WritePNG plots the three gauges over time, summed over the targets, one
// panel each, with the load's start and end marked.
func (r *Result) WritePNG(path, title string) error {
	var panels [][]*plot.Plot
	var loadStart, loadEnd float64 = -1, -1
	for _, s := range r.Samples {
		if s.Phase == PhaseLoad {
			if loadStart < 0 {
				loadStart = s.At.Seconds()
			}
			loadEnd = s.At.Seconds()
		}
	}
	ylabels := []string{"resident memory (MiB)", "goroutines", "open fds"}
	scale := []float64{1 << 20, 1, 1}
	for i, f := range fields {
		p := plot.New()
		if i == 0 {
			p.Title.Text = title
		}
		p.Y.Label.Text = ylabels[i]
		if i == len(fields)-1 {
			p.X.Label.Text = "time since start (s)"
		}
		p.Add(plotter.NewGrid())
		// Sum over targets per sample time (samples of one round share At).
		var xys plotter.XYs
		for _, s := range r.Samples {
			x, y := s.At.Seconds(), f.get(&s.Gauges)/scale[i]
			if n := len(xys); n > 0 && xys[n-1].X == x {
				xys[n-1].Y += y
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
		}
		if len(xys) == 0 {
			return fmt.Errorf("soak: no samples to plot")
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("soak: plot: %w", err)
		}
		l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
		p.Add(l)
		for _, x := range []float64{loadStart, loadEnd} {
			if x >= 0 {
				m, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: maxY(xys)}})
				if err == nil {
					m.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
					p.Add(m)
				}
			}
		}
		p.Y.Min = 0
		panels = append(panels, []*plot.Plot{p})
	}
	const w, h = 8 * vg.Inch, 8 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
		PadRight: vg.Points(8), PadY: vg.Points(8)}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		panels[i][0].Draw(canvases[i][0])
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(out); err != nil {
		out.Close()
		return fmt.Errorf("soak: %s: %w", path, err)
	}
	return out.Close()
}

func maxY(xys plotter.XYs) float64 {
	m := 0.0
	for _, p := range xys {
		m = max(m, p.Y)
	}
	return m
}
