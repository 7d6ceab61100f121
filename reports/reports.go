// Package reports renders chatbench results from files alone: it reads
// results directories (summary.json, see bench/metrics) and writes the text
// summary a user reads after a run, comparisons of several runs, and PNG
// plots (latency by percentile, and per-second series). It never runs
// anything and imports only bench/metrics of this project.
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
// followed by each summary) to w and to outDir/report.txt, and the plots
// outDir/latency.png (delivery latency by percentile, runs overlaid) and
// outDir/series.png (delivered/s and p99 per second). It returns the paths
// written.
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
	lat := filepath.Join(outDir, LatencyPlot)
	switch err := PercentilePlot(lat, "delivery", runs); {
	case err == nil:
		files = append(files, lat)
	case err != errNoData:
		return files, err
	}
	ser := filepath.Join(outDir, SeriesPlotFile)
	switch err := SeriesPlot(ser, runs); {
	case err == nil:
		files = append(files, ser)
	case err != errNoData:
		return files, err
	}
	return files, nil
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
