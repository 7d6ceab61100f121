package gate

import (
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var sideColors = map[string]color.Color{
	BaselineName:  color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	CandidateName: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// Plot writes a PNG with one panel per metric: every measured run's value
// at its place in the interleaved order, by version, with each version's
// median as a line; the title carries the command, machine and date.
func Plot(path string, res *Result) error {
	if len(res.Comparisons) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	const panelW, panelH = 7 * vg.Inch, 3.2 * vg.Inch
	rows := len(res.Comparisons)
	plots := make([][]*plot.Plot, rows)
	for i, c := range res.Comparisons {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s (ratio %s, p %s)", c.Name, c.Verdict, numText(c.Ratio, "%.3f"), pText(c.P))
		if i == 0 {
			p.Title.Text = fmt.Sprintf("chatbench gate, scenario %s: %s\n%s", res.Scenario, res.Verdict, p.Title.Text)
		}
		p.X.Label.Text = "run (interleaved order)"
		p.Y.Label.Text = fmt.Sprintf("%s (%s)", c.Name, c.Unit)
		p.Legend.Top = true
		for _, side := range []string{BaselineName, CandidateName} {
			var xys plotter.XYs
			for _, r := range res.Runs {
				if v, ok := r.Values[c.Name]; ok && r.Measured && r.Version == side {
					xys = append(xys, plotter.XY{X: float64(r.Index), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color = sideColors[side]
			sc.GlyphStyle.Radius = vg.Points(3.5)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			med := c.Baseline.Median
			if side == CandidateName {
				med = c.Candidate.Median
			}
			p.Add(sc)
			p.Legend.Add(fmt.Sprintf("%s (median %s)", side, valText(med)), sc)
			if med.Finite() {
				ln, err := plotter.NewLine(plotter.XYs{{X: 0.5, Y: float64(med)}, {X: float64(len(res.Runs)) + 0.5, Y: float64(med)}})
				if err != nil {
					return err
				}
				ln.Color = sideColors[side]
				ln.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				p.Add(ln)
			}
		}
		p.X.Min, p.X.Max = 0.5, float64(len(res.Runs))+0.5
		plots[i] = []*plot.Plot{p}
	}
	footer := plot.New()
	footer.HideAxes()
	footer.Title.Text = fmt.Sprintf("%s\n%s, %d cores, %s", wrap(res.Command, 120), res.Machine.CPUModel, res.Machine.Cores, res.Start.Format("2006-01-02 15:04 MST"))
	footer.Title.TextStyle.Font.Size = vg.Points(9)
	plots = append(plots, []*plot.Plot{footer})
	img := vgimg.New(panelW, panelH*vg.Length(rows)+0.9*vg.Inch)
	dc := draw.New(img)
	heights := make([]float64, 0, rows+1)
	for range rows {
		heights = append(heights, float64(panelH))
	}
	heights = append(heights, float64(0.9*vg.Inch))
	canvases := splitRows(dc, heights)
	for i, row := range plots {
		row[0].Draw(canvases[i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}

// splitRows cuts c into rows of the given heights, top to bottom.
func splitRows(c draw.Canvas, heights []float64) []draw.Canvas {
	out := make([]draw.Canvas, len(heights))
	top := c.Max.Y
	for i, h := range heights {
		sub := c
		sub.Max.Y = top
		sub.Min.Y = top - vg.Length(h)
		out[i] = sub
		top = sub.Min.Y
	}
	return out
}
