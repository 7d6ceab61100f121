package reports

import (
	"bytes"
	"encoding/base64"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chatbench/chatbench/bench/metrics"
)

// The recorded inputs: testdata/run is a real run of broadcast-storm (200
// clients, split 2 connectors x 1 shard) and testdata/sweep a real sweep of
// it (single and split 1-2 connectors x 1-2 shards, one round), both cut
// down to the files the reports read.

// rendered is the recorded run and sweep rendered once for every test of
// the package that needs them (rendering is the slow part under -race):
// the sweep with one more run, marked failed.
var rendered struct {
	once       sync.Once
	root       string
	run, sweep string
	runFiles   []string
	sweepFiles []string
	sw         *metrics.Sweep
	err        error
}

const failedRunError = "chatbench bench exited 1: the started server exited before it was ready"

func renderRecorded(t *testing.T) (runDir, sweepDir string) {
	t.Helper()
	r := &rendered
	r.once.Do(func() {
		if r.root, r.err = os.MkdirTemp("", "reports-test-"); r.err != nil {
			return
		}
		r.run, r.sweep = filepath.Join(r.root, "run"), filepath.Join(r.root, "sweep")
		if r.err = copyTree(filepath.Join("testdata", "run"), r.run); r.err != nil {
			return
		}
		if r.err = copyTree(filepath.Join("testdata", "sweep"), r.sweep); r.err != nil {
			return
		}
		var runs []Run
		if runs, r.err = Load(r.run); r.err != nil {
			return
		}
		if r.runFiles, r.err = Render(io.Discard, r.run, runs); r.err != nil {
			return
		}
		if r.sw, r.err = LoadSweep(r.sweep); r.err != nil {
			return
		}
		r.sw.Runs = append(r.sw.Runs, metrics.SweepRun{Config: "split-c2-s2", Topology: "split", Connectors: 2, Shards: 2, Round: 2,
			ExitCode: 1, Error: failedRunError})
		r.sweepFiles, r.err = RenderSweep(r.sweep, r.sw)
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.run, r.sweep
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if rendered.root != "" {
		os.RemoveAll(rendered.root)
	}
	os.Exit(code)
}

// copyDir copies testdata into a temporary directory (reports write next
// to their inputs) and returns the copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// checkPNG decodes a PNG and checks its size in pixels.
func checkPNG(t *testing.T, name string, data []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("%s is %dx%d, want %dx%d", name, b.Dx(), b.Dy(), w, h)
	}
}

var dataURI = regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"`)

// checkHTML checks that page holds want images inline, each a valid PNG,
// and refers to nothing on the network.
func checkHTML(t *testing.T, page string, want int) {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(data)
	imgs := dataURI.FindAllStringSubmatch(html, -1)
	if len(imgs) != want || strings.Count(html, "<img ") != want {
		t.Fatalf("%s: %d inline images of %d <img>, want %d", page, len(imgs), strings.Count(html, "<img "), want)
	}
	for i, m := range imgs {
		raw, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
			t.Fatalf("image %d is not a PNG: %v", i, err)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script", "src=\"/", "@import"} {
		if strings.Contains(html, bad) {
			t.Fatalf("%s contains %q: it must open from disk with no network", page, bad)
		}
	}
}

func TestRenderRecordedRun(t *testing.T) {
	dir, _ := renderRecorded(t)
	runs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := rendered.runFiles
	sizes := map[string][2]int{LatencyPlot: {768, 480}, SeriesPlotFile: {768, 672}}
	for name, wh := range sizes {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, name, data, wh[0], wh[1])
	}
	if last := files[len(files)-1]; filepath.Base(last) != HTMLFile {
		t.Fatalf("files %v: report.html not last", files)
	}
	checkHTML(t, filepath.Join(dir, HTMLFile), 2)
	html, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	for _, want := range []string{"Thresholds", "Driver self-check", "fingerprint " + runs[0].Summary.Machine.Fingerprint,
		`href="summary.json"`, `href="delivery.hgrm"`, `href="server-cpu.csv"`, "Server CPU", "connector-1"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if runs[0].Summary.Fine == nil {
		t.Fatal("the recorded run has no 100 ms buckets")
	}
}

// TestRenderRecordedSweep renders the recorded sweep with one more run,
// marked failed: every plot, the failure and its error are in the page.
// A page of the sweep as recorded (no images: rendering is the slow part)
// says that every run produced results.
func TestRenderRecordedSweep(t *testing.T) {
	sw, err := LoadSweep(filepath.Join("testdata", "sweep"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	var clean bytes.Buffer
	if err := WriteHTML(&clean, SweepPage(sw, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clean.String(), "5 runs, all produced results") || strings.Contains(clean.String(), "FAILED") {
		t.Errorf("the recorded sweep's page does not say every run produced results")
	}
	_, dir := renderRecorded(t)
	sw, files = rendered.sw, rendered.sweepFiles
	want := map[string][2]int{ScalingConnectorsPlot: {768, 672}, ScalingShardsPlot: {768, 672}, EfficiencyPlot: {768, 480},
		CompareRatePlot: {768, 480}, CompareLatencyPlot: {768, 480}}
	if len(files) != len(want)+1 {
		t.Fatalf("files %v", files)
	}
	for name, wh := range want {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, name, data, wh[0], wh[1])
	}
	checkHTML(t, filepath.Join(dir, HTMLFile), len(want))
	html, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	for _, r := range sw.Runs {
		if r.Dir != "" && !strings.Contains(string(html), `href="`+r.Dir+`/report.html"`) {
			t.Errorf("no link to %s", r.Dir)
		}
	}
	if !strings.Contains(string(html), "1 of 6 runs FAILED") || !strings.Contains(string(html), "the started server exited before it was ready") {
		t.Errorf("the failed run is not marked with its error")
	}
	var text bytes.Buffer
	if err := WriteSweepText(&text, sw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "split-c2-s2") || !strings.Contains(text.String(), "FAILED split-c2-s2 round 2") {
		t.Errorf("text:\n%s", text.String())
	}
}

func TestCompact(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{0, "0"}, {950, "950"}, {1200, "1.2k"}, {20000, "20k"}, {125000, "125k"}, {1200000, "1.2M"}, {999999, "1000k"}, {-1500, "-1.5k"}, {2.5e9, "2.5G"}}
	for _, tt := range tests {
		if got := Compact(tt.in); got != tt.want {
			t.Errorf("Compact(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMsTicks(t *testing.T) {
	var labels []string
	for _, tk := range (msTicks{}).Ticks(0.3, 1500) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "0.5ms 1ms 2ms 5ms 10ms 20ms 50ms 100ms 200ms 500ms 1s" {
		t.Fatalf("labels %q", got)
	}
}

func TestSecondsTicks(t *testing.T) {
	tests := []struct {
		min, max float64
		want     string
	}{
		{0, 2.6, "0 0.5 1 1.5 2 2.5"},
		{0, 7, "0 1 2 3 4 5 6 7"},
		{0, 65, "0 10 20 30 40 50 60"},
	}
	for _, tt := range tests {
		var labels []string
		for _, tk := range (secondsTicks{}).Ticks(tt.min, tt.max) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if got := strings.Join(labels, " "); got != tt.want {
			t.Errorf("%v..%v: %q, want %q", tt.min, tt.max, got, tt.want)
		}
	}
}
