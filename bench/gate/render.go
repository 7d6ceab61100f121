package gate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/chatbench/chatbench/reports"
)

// Write writes gate.json, gate.txt and gate.png into dir.
func Write(dir string, res *Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("gate.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gate.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var txt bytes.Buffer
	if err := Text(&txt, res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "gate.txt"), txt.Bytes(), 0o644); err != nil {
		return err
	}
	if err := Plot(filepath.Join(dir, "gate.png"), res); err != nil {
		return fmt.Errorf("gate.png: %w", err)
	}
	return nil
}

// Read reads a gate.json, refusing another major schema version.
func Read(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if res.Schema != SchemaV2 {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, res.Schema, SchemaV2)
	}
	return &res, nil
}

// Text writes the verdict table: one row per metric with both medians and
// their intervals, the ratio, the p-value and the metric's verdict; then
// the runs that were no measurement, and the overall verdict.
func Text(w io.Writer, res *Result) error {
	fmt.Fprintf(w, "gate      scenario %s, %d runs each (up to %d), interleaved (baseline, candidate, candidate, baseline, ...)\n", res.Scenario, res.RunsEach, res.MaxRuns)
	fmt.Fprintf(w, "baseline  %s\n", sideText(res.Baseline))
	fmt.Fprintf(w, "candidate %s\n", sideText(res.Candidate))
	fmt.Fprintf(w, "machine   %s, %d cores, %s; %s to %s\n\n", res.Machine.CPUModel, res.Machine.Cores, res.Machine.Kernel,
		res.Start.Format("2006-01-02 15:04:05"), res.End.Format("15:04:05 MST"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	conf, equiv := 0.95, 0.90
	if len(res.Comparisons) > 0 {
		conf, equiv = res.Comparisons[0].Confidence, res.Comparisons[0].Equivalence
	}
	fmt.Fprintf(tw, "metric\tbaseline median [%.0f%% CI] n\tcandidate median [%.0f%% CI] n\tratio\tworse [%.0f%% CI]\tp\ttolerance\tverdict\t\n", 100*conf, 100*conf, 100*equiv)
	for _, c := range res.Comparisons {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s [%s, %s]\t%s\t%.0f%%\t%s\t\n", c.Name, sumText(c.Baseline), sumText(c.Candidate),
			numText(c.Ratio, "%.3f"), pctText(c.Worse), pctText(c.WorseLo), pctText(c.WorseHi), pText(c.P), 100*c.Tolerance, c.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	width := 0
	for _, c := range res.Comparisons {
		width = max(width, len(c.Name)+1)
	}
	for _, c := range res.Comparisons {
		fmt.Fprintf(w, "%-*s %s\n", width, c.Name+":", c.Reason)
	}
	var excluded []string
	for _, r := range res.Runs {
		if !r.Measured {
			excluded = append(excluded, fmt.Sprintf("  run %d (%s): %s", r.Index, r.Version, r.Excluded))
		}
	}
	if len(excluded) > 0 {
		fmt.Fprintf(w, "\nno measurement (%d of %d runs):\n%s\n", len(excluded), len(res.Runs), strings.Join(excluded, "\n"))
	}
	var warns []string
	for _, c := range res.Comparisons {
		for _, x := range c.Warnings {
			if !containsStr(warns, x) {
				warns = append(warns, x)
			}
		}
	}
	if len(warns) > 0 {
		fmt.Fprintf(w, "\nwarnings: %s\n", strings.Join(warns, "; "))
	}
	_, err := fmt.Fprintf(w, "\nverdict: %s (exit %d)\n", strings.ToUpper(string(res.Verdict)), res.ExitCode)
	return err
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func sideText(s Side) string {
	var parts []string
	if s.Ref != "" {
		parts = append(parts, "ref "+s.Ref)
	}
	if s.Commit != "" {
		parts = append(parts, "commit "+s.Commit)
	}
	parts = append(parts, "binary "+s.Binary)
	if len(s.BenchArgs) > 0 {
		parts = append(parts, "bench flags "+strings.Join(s.BenchArgs, " "))
	}
	return strings.Join(parts, ", ")
}

func sumText(s Summary) string {
	if s.N == 0 {
		return "- n=0"
	}
	return fmt.Sprintf("%s [%s, %s] n=%d", valText(s.Median), valText(s.Lo), valText(s.Hi), s.N)
}

// valText prints a value with about four significant digits (thousands
// separated for large ones).
func valText(n Num) string {
	v := float64(n)
	switch {
	case math.IsInf(v, -1):
		return "-inf"
	case math.IsInf(v, 1):
		return "+inf"
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 10000:
		return reports.Count(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// pText prints a p-value, "<0.001" below a thousandth.
func pText(p Num) string {
	if p.Finite() && p < 0.001 {
		return "<0.001"
	}
	return numText(p, "%.3g")
}

func numText(n Num, format string) string {
	if !n.Finite() {
		return "-"
	}
	return fmt.Sprintf(format, float64(n))
}
