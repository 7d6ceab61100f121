package metrics

import "errors"

// File names inside a results directory.
const (
	SummaryFile = "summary.json"
	SeriesFile  = "series.csv"
	HgrmExt     = ".hgrm" // one <op>.hgrm per operation with samples
)

// Write writes summary.json, one <op>.hgrm per operation with samples and
// series.csv into dir (created if missing).
func (s *Summary) Write(dir string) error { return errors.New("metrics: not implemented yet") }

// ReadSummary reads summary.json from path (a file, or a results directory).
// It refuses a schema that is not chatbench.summary/v<major> with a major
// version this build knows, with an error that says so.
func ReadSummary(path string) (*Summary, error) {
	return nil, errors.New("metrics: not implemented yet")
}

// Merge combines the summaries of runs made at the same time on several
// machines: counters add up, histograms merge losslessly, series align by
// second, deliveries/s add up; Parts lists the inputs. Thresholds and
// Ceiling are dropped (re-evaluate them on the merge).
func Merge(parts ...*Summary) (*Summary, error) {
	return nil, errors.New("metrics: not implemented yet")
}
