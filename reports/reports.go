// Package reports renders chatbench results from files alone: it reads
// results directories (summary.json) and sweep directories (sweep.json),
// both defined by bench/metrics, and writes the text summary a user reads
// after a run, comparisons of several runs, PNG plots (latency by
// percentile, series over time, scaling curves of a sweep) and a
// self-contained report.html. It never runs anything and imports only
// bench/metrics of this project; its Page, Section and *PNG functions are
// reusable by other report writers.
package reports

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatbench/chatbench/bench/metrics"
)

// Run is one results directory and its summary.
type Run struct {
	Label   string // short name in comparisons and legends (the directory name)
	Dir     string
	Summary *metrics.Summary
}

// Load reads the summary of each results directory (or summary.json path).
// Labels are the directory names, made unique with their parent when two
// are the same.
func Load(paths ...string) ([]Run, error) {
	runs := make([]Run, 0, len(paths))
	seen := map[string]int{}
	for _, p := range paths {
		s, err := metrics.ReadSummary(p)
		if err != nil {
			return nil, err
		}
		dir := p
		if filepath.Base(p) == metrics.SummaryFile {
			dir = filepath.Dir(p)
		}
		label := filepath.Base(filepath.Clean(dir))
		seen[label]++
		runs = append(runs, Run{Label: label, Dir: dir, Summary: s})
	}
	for i := range runs {
		if seen[runs[i].Label] > 1 {
			runs[i].Label = filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(filepath.Clean(runs[i].Dir))), runs[i].Label))
		}
	}
	return runs, nil
}

// Files written by Render into its output directory.
const (
	TextFile       = "report.txt"
	LatencyPlot    = "latency.png"
	SeriesPlotFile = "series.png"
)

// Render writes the text (one run: its summary; several: a comparison
// followed by each summary) to w and to outDir/report.txt, the plots
// outDir/latency.png (delivery latency by percentile, runs overlaid) and
// outDir/series.png (delivered/s and p99 over time), and outDir/report.html
// (everything in one self-contained page). It returns the paths written,
// report.html last.
func Render(w io.Writer, outDir string, runs []Run) ([]string, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("reports: no runs")
	}
	var b strings.Builder
	if err := WriteReport(&b, runs); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	text := filepath.Join(outDir, TextFile)
	if err := os.WriteFile(text, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	files := []string{text}
	var images []Image
	plots := []struct {
		file, title, alt string
		render           func() ([]byte, error)
	}{
		{LatencyPlot, "Delivery latency by percentile (log axes where the range spans decades)", "delivery latency by percentile",
			func() ([]byte, error) {
				return PercentilePNG(percentileTitle("delivery", runs), RunCurves("delivery", runs), runsCaption(runs))
			}},
		{SeriesPlotFile, "Deliveries per second and delivery latency per second over the run", "deliveries and latency over time",
			func() ([]byte, error) { return SeriesPNG(runs) }},
	}
	for _, pl := range plots {
		data, err := pl.render()
		if err == errNoData {
			continue
		}
		path := filepath.Join(outDir, pl.file)
		if err := writePNG(path, data, err); err != nil {
			return files, err
		}
		files = append(files, path)
		images = append(images, Image{Title: pl.title, Alt: pl.alt, PNG: data})
	}
	page := filepath.Join(outDir, HTMLFile)
	if err := writeHTMLFile(page, RunPage(runs, images, b.String(), outDir)); err != nil {
		return files, err
	}
	return append(files, page), nil
}

// WriteReport writes the text of one run, or a comparison of several runs
// followed by each run's summary.
func WriteReport(w io.Writer, runs []Run) error {
	if len(runs) > 1 {
		if err := WriteComparison(w, runs); err != nil {
			return err
		}
	}
	for i, r := range runs {
		if len(runs) > 1 || i > 0 {
			if _, err := fmt.Fprintf(w, "\n== %s ==\n", r.Label); err != nil {
				return err
			}
		}
		if err := WriteText(w, r); err != nil {
			return err
		}
	}
	return nil
}

// FromSummary wraps a summary already in memory (e.g. right after a run)
// as a Run labelled by its directory.
func FromSummary(dir string, s *metrics.Summary) Run {
	return Run{Label: filepath.Base(filepath.Clean(dir)), Dir: dir, Summary: s}
}
