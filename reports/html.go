package reports

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/metrics"
)

// HTMLFile is the self-contained report of a run, comparison or sweep:
// images inline (data URIs), no script, no network; links to the raw
// files are relative, so the directory can move.
const HTMLFile = "report.html"

// Image is a rendered figure for a report.
type Image struct {
	Title string
	Alt   string
	PNG   []byte
}

// Src is the image's src attribute, a data: URI (written whole: an escaped
// attribute would turn every + of the base64 into &#43;).
func (i Image) Src() template.HTMLAttr {
	return template.HTMLAttr(`src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(i.PNG) + `"`)
}

// Link is a relative link to a raw file.
type Link struct {
	Name, Href, Note string
}

// Row is one row of a table: cells, and a class for the whole row
// ("fail", "warn" or "").
type Row struct {
	Cells []string
	Class string
}

// Table is a titled table of a report.
type Table struct {
	Title  string
	Note   string
	Header []string
	Rows   []Row
}

// Section is one part of a report page: a heading, paragraphs, tables,
// images, links, preformatted text; whatever is set.
type Section struct {
	Title  string
	Paras  []string
	Tables []Table
	Images []Image
	Links  []Link
	Pre    string // text shown in a collapsed block
}

// Page is a whole report: what the gate and other tools can fill in and
// render with WriteHTML.
type Page struct {
	Title    string
	Subtitle string   // command, machine and date: what every figure needs
	Verdict  string   // one line: PASS, FAIL, ...
	Bad      bool     // the verdict is a failure
	Facts    []string // short lines under the title
	Sections []Section
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{{.Title}}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em 3em; color: #1d2330; }
h1 { font-size: 1.5em; margin: .3em 0 .1em; }
h2 { font-size: 1.15em; margin: 1.8em 0 .5em; border-bottom: 1px solid #dde2ea; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
.sub { color: #5b6475; font-size: .9em; margin: 0 0 .6em; word-break: break-word; }
.verdict { display: inline-block; padding: .2em .7em; border-radius: 4px; font-weight: 600; background: #e3f4e6; color: #1b5e20; }
.verdict.bad { background: #fde7e7; color: #9b1c1c; }
ul.facts { margin: .4em 0; padding-left: 1.2em; }
table { border-collapse: collapse; margin: .3em 0 1em; font-size: .9em; display: block; overflow-x: auto; max-width: 100%; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e6e9ef; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f5f9; font-weight: 600; white-space: normal; vertical-align: bottom; }
tr.fail td { background: #fdecec; color: #8a1515; }
tr.warn td { background: #fff6e0; }
td.err { white-space: normal; text-align: left; max-width: 40em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e6e9ef; }
figcaption { color: #5b6475; font-size: .85em; }
.note { color: #5b6475; font-size: .85em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .8em; }
a { color: #1f5fbf; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Subtitle}}<p class="sub">{{.Subtitle}}</p>{{end}}
{{if .Verdict}}<p><span class="verdict{{if .Bad}} bad{{end}}" id="verdict">{{.Verdict}}</span></p>{{end}}
{{if .Facts}}<ul class="facts">{{range .Facts}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{range .Sections}}<section>
<h2>{{.Title}}</h2>
{{range .Paras}}<p>{{.}}</p>{{end}}
{{range .Tables}}{{if .Title}}<h3>{{.Title}}</h3>{{end}}
<table>
<thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr{{if .Class}} class="{{.Class}}"{{end}}>{{range $i, $c := .Cells}}<td>{{$c}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{if .Note}}<p class="note">{{.Note}}</p>{{end}}{{end}}
{{range .Images}}<figure><img {{.Src}} alt="{{.Alt}}"><figcaption>{{.Title}}</figcaption></figure>
{{end}}
{{if .Links}}<ul>{{range .Links}}<li><a href="{{.Href}}">{{.Name}}</a>{{if .Note}} <span class="note">{{.Note}}</span>{{end}}</li>{{end}}</ul>{{end}}
{{if .Pre}}<details><summary>text report</summary><pre>{{.Pre}}</pre></details>{{end}}
</section>
{{end}}
<p class="note">Written by chatbench from the results files alone; this page loads nothing from the network.</p>
</body>
</html>
`))

// WriteHTML renders a page.
func WriteHTML(w io.Writer, p Page) error {
	if err := pageTmpl.Execute(w, p); err != nil {
		return fmt.Errorf("reports: html: %w", err)
	}
	return nil
}

// writeHTMLFile renders a page into path (via a temporary file).
func writeHTMLFile(path string, p Page) error {
	var b bytes.Buffer
	if err := WriteHTML(&b, p); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return nil
}

// MachineText is one line about the machine a run measured on.
func MachineText(m metrics.Machine) string {
	return fmt.Sprintf("%s, %d cores, %s, %s/%s, kernel %s, fingerprint %s", orDash(m.CPUModel), m.Cores, gib(m.MemoryBytes),
		orDash(m.OS), orDash(m.Arch), orDash(m.Kernel), orDash(m.Fingerprint))
}

// RunCommand is the bench command line that repeats a run as far as its
// summary tells (scenario, clients, rooms, seed, topology).
func RunCommand(s *metrics.Summary) string {
	cmd := fmt.Sprintf("chatbench bench --scenario %s --clients %d --rooms %d --seed %d", s.Scenario, s.Clients, s.Rooms, s.Seed)
	switch s.Topology {
	case "", "external":
		cmd += " --target " + orDash(s.Target)
	default:
		cmd += " --topology " + s.Topology
	}
	return cmd
}

// thresholdsVerdict is "PASS", "FAIL: names" or "" without thresholds.
func thresholdsVerdict(s *metrics.Summary) (string, bool) {
	if len(s.Thresholds) == 0 {
		return "", false
	}
	var failed []string
	for _, t := range s.Thresholds {
		if !thresholdPass(s, t) {
			failed = append(failed, t.Name)
		}
	}
	if len(failed) > 0 {
		return "thresholds FAIL: " + strings.Join(failed, ", "), true
	}
	return "thresholds PASS", false
}

// RunSections are the sections of one run's report: summary, thresholds,
// latency, phases, driver self-check, server CPU, machine and ceiling.
// The gate and the sweep reuse them.
func RunSections(r Run) []Section {
	s := r.Summary
	c := s.Counters
	sum := Table{Header: []string{"measure", "value"}}
	add := func(k, v string, class string) { sum.Rows = append(sum.Rows, Row{Cells: []string{k, v}, Class: class}) }
	add("deliveries/s over the message phases", Rate(s.DeliveriesPerSec), "")
	add("peak second", Rate(s.PeakDeliveriesPerSec), "")
	add("sent", Count(c.Sent), "")
	add("delivered / expected", Count(c.Delivered)+" / "+Count(c.Expected), "")
	add("lost", Count(c.Lost), classIf(c.Lost > 0, "fail"))
	if c.Misrouted > 0 {
		add("misrouted", Count(c.Misrouted), "fail")
	}
	add("duplicated, out of order", Count(c.Duplicated)+", "+Count(c.OutOfOrder), classIf(c.Duplicated+c.OutOfOrder > 0, "warn"))
	add("late sends", Count(c.LateSends), classIf(c.LateSends > 0, "warn"))
	add("errors", fmt.Sprintf("%s of %s requests (%.2f%%)", Count(c.Errors), Count(c.Requests), 100*s.ErrorRate()), classIf(c.Errors > 0, "warn"))
	if d := s.Ops["delivery"]; d.Count > 0 {
		add("delivery p50 / p99 / p99.9 / max", Us(d.P50Us)+" / "+Us(d.P99Us)+" / "+Us(d.P999Us)+" / "+Us(d.MaxUs), "")
	}
	secs := []Section{{Title: "Summary", Tables: []Table{sum}}}

	if len(s.Thresholds) > 0 {
		t := Table{Header: []string{"threshold", "verdict", "actual vs limit"}}
		for _, th := range s.Thresholds {
			ok := thresholdPass(s, th)
			t.Rows = append(t.Rows, Row{Cells: []string{th.Name, map[bool]string{true: "passed", false: "FAILED"}[ok], thresholdText(s, th)},
				Class: classIf(!ok, "fail")})
		}
		secs = append(secs, Section{Title: "Thresholds", Tables: []Table{t}})
	}

	lat := Table{Header: []string{"operation", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"}}
	for _, op := range headlineOrder(s.OpNames()) {
		st := s.Ops[op]
		lat.Rows = append(lat.Rows, Row{Cells: []string{op, Count(st.Count), Us(st.MinUs), Us(st.P50Us), Us(st.P90Us), Us(st.P99Us),
			Us(st.P999Us), Us(st.MaxUs), Us(int64(st.MeanUs + 0.5))}})
	}
	lsec := Section{Title: "Latency", Tables: []Table{lat}}
	if len(s.Phases) > 0 {
		ph := Table{Title: "phases", Header: []string{"phase", "kind", "start", "end", "sent", "delivered", "deliveries/s", "burst"}}
		for _, p := range s.Phases {
			burst := ""
			if p.ActiveDeliveriesPerSec > 0 {
				burst = fmt.Sprintf("%s over %.1f s", Rate(p.ActiveDeliveriesPerSec), p.ActiveS)
			}
			ph.Rows = append(ph.Rows, Row{Cells: []string{p.Name, p.Kind, fmt.Sprintf("%.1fs", p.Start.Sub(s.Start).Seconds()),
				fmt.Sprintf("%.1fs", p.End.Sub(s.Start).Seconds()), Count(p.Sent), Count(p.Delivered), Rate(p.DeliveriesPerSec), burst}})
		}
		lsec.Tables = append(lsec.Tables, ph)
	}
	secs = append(secs, lsec)

	d := s.Driver
	drv := Table{Header: []string{"self-check", "value"}}
	verdict := "ok: the server, not the driver, set the pace"
	if d.DriverBound {
		verdict = "DRIVER-BOUND, the results measure the driver: " + orDash(d.DriverBoundWhy)
	}
	drv.Rows = append(drv.Rows, Row{Cells: []string{"verdict", verdict}, Class: classIf(d.DriverBound, "fail")},
		Row{Cells: []string{"driver CPU", fmt.Sprintf("%.0f%% of one core%s", d.CPUPercent, cpuSeconds(d.CPUSeconds))}},
		Row{Cells: []string{"GC pause max / total", Us(d.GCPauseMaxUs) + " / " + Us(d.GCPauseTotalUs)}},
		Row{Cells: []string{"scheduler lag p99 / max", Us(d.SchedLagP99Us) + " / " + Us(d.SchedLagMaxUs)}})
	if d.MemoryPerClientB > 0 {
		drv.Rows = append(drv.Rows, Row{Cells: []string{"driver memory per client", Count(d.MemoryPerClientB) + " bytes"}})
	}
	secs = append(secs, Section{Title: "Driver self-check", Tables: []Table{drv}})

	if len(s.Servers) > 0 {
		t := Table{Header: []string{"server process", "pid", "CPU seconds"}}
		for _, p := range s.Servers {
			t.Rows = append(t.Rows, Row{Cells: []string{p.Name, fmt.Sprint(p.PID), fmt.Sprintf("%.2f", p.CPUSeconds)}})
		}
		total := s.ServerCPUSeconds()
		t.Rows = append(t.Rows, Row{Cells: []string{"all servers", "", fmt.Sprintf("%.2f", total)}})
		if total > 0 {
			t.Note = fmt.Sprintf("%s deliveries per server CPU second", Compact(float64(c.Delivered)/total))
		}
		secs = append(secs, Section{Title: "Server CPU", Tables: []Table{t}})
	}

	mach := []string{MachineText(s.Machine)}
	if s.Ceiling != nil {
		mach = append(mach, fmt.Sprintf("Ceiling ratio %.2f: this run's deliveries/s over the machine's calibrated bare fan-out ceiling of %s (fingerprint %s).",
			s.Ceiling.Ratio, Rate(s.Ceiling.DeliveriesPerSec), orDash(s.Ceiling.Fingerprint)))
	} else {
		mach = append(mach, "No ceiling ratio: this machine was not calibrated for this scenario (chatbench calibrate), or the target was not local.")
	}
	secs = append(secs, Section{Title: "Machine", Paras: mach})
	return secs
}

func cpuSeconds(s float64) string {
	if s <= 0 {
		return ""
	}
	return fmt.Sprintf(", %.2f CPU seconds", s)
}

func classIf(b bool, class string) string {
	if b {
		return class
	}
	return ""
}

// rawLinks lists the files of a results directory as links relative to
// fromDir (where the report is).
func rawLinks(dir, fromDir string) []Link {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	notes := map[string]string{
		metrics.SummaryFile: "everything (docs/results.md)", metrics.SeriesFile: "per-second series",
		"rooms.csv": "per-room accounting", TextFile: "the text report", LatencyPlot: "", SeriesPlotFile: "",
	}
	var links []Link
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == HTMLFile || strings.HasSuffix(name, ".tmp") {
			continue
		}
		note, known := notes[name]
		if !known && strings.HasSuffix(name, metrics.HgrmExt) {
			note = "HdrHistogram percentile text, ms"
		}
		href, err := filepath.Rel(fromDir, filepath.Join(dir, name))
		if err != nil {
			href = filepath.Join(dir, name)
		}
		links = append(links, Link{Name: name, Href: filepath.ToSlash(href), Note: note})
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return links
}

// RunPage is the report page of one run, or of a comparison of several
// (a comparison table, overlaid plots, then each run), with images given
// (PNG bytes, rendered by the caller) and links to the raw files relative
// to outDir.
func RunPage(runs []Run, images []Image, text, outDir string) Page {
	first := runs[0].Summary
	p := Page{}
	if len(runs) == 1 {
		p.Title = fmt.Sprintf("chatbench %s: %s", first.Scenario, orDash(first.Topology))
		p.Subtitle = fmt.Sprintf("%s · %s · %s · commit %s", RunCommand(first), first.Start.UTC().Format(time.DateTime+" MST"),
			MachineText(first.Machine), orDash(first.Commit))
		v, bad := thresholdsVerdict(first)
		if first.Driver.DriverBound {
			v, bad = strings.TrimSpace(v+" · DRIVER-BOUND (results invalid)"), true
		}
		p.Verdict, p.Bad = v, bad
		p.Facts = []string{fmt.Sprintf("%d clients, %d rooms, %.1f s; %s deliveries/s, delivery p99 %s, lost %s",
			first.Clients, first.Rooms, first.DurationSeconds, Rate(first.DeliveriesPerSec), Us(first.Ops["delivery"].P99Us), Count(first.Counters.Lost))}
		secs := RunSections(runs[0])
		p.Sections = append(p.Sections, secs[0])
		p.Sections = append(p.Sections, Section{Title: "Plots", Images: images})
		p.Sections = append(p.Sections, secs[1:]...)
		p.Sections = append(p.Sections, Section{Title: "Raw files", Links: rawLinks(runs[0].Dir, outDir), Pre: text})
		return p
	}
	p.Title = fmt.Sprintf("chatbench comparison of %d runs", len(runs))
	p.Subtitle = fmt.Sprintf("chatbench report %s · %s", strings.Join(dirs(runs), " "), MachineText(first.Machine))
	cmp := Table{Header: []string{"run", "scenario", "topology", "clients", "deliveries/s", "vs first", "p50", "p99", "p99.9", "lost", "errors", "driver", "ceiling"}}
	for _, r := range runs {
		s := r.Summary
		d := s.Ops["delivery"]
		ceil := "-"
		if s.Ceiling != nil {
			ceil = fmt.Sprintf("%.2f", s.Ceiling.Ratio)
		}
		drv := "ok"
		if s.Driver.DriverBound {
			drv = "BOUND"
		}
		cmp.Rows = append(cmp.Rows, Row{Cells: []string{r.Label, s.Scenario, orDash(s.Topology), Count(int64(s.Clients)), Rate(s.DeliveriesPerSec),
			orDash(ratio(s.DeliveriesPerSec, first.DeliveriesPerSec)), Us(d.P50Us), Us(d.P99Us), Us(d.P999Us), Count(s.Counters.Lost),
			Count(s.Counters.Errors), drv, ceil}, Class: classIf(s.Driver.DriverBound || s.Counters.Lost > 0, "warn")})
	}
	p.Sections = append(p.Sections, Section{Title: "Comparison", Tables: []Table{cmp}}, Section{Title: "Plots", Images: images})
	for _, r := range runs {
		secs := RunSections(r)
		sec := Section{Title: "Run " + r.Label, Tables: secs[0].Tables, Links: rawLinks(r.Dir, outDir)}
		for _, s := range secs[1:] {
			if s.Title == "Thresholds" || s.Title == "Driver self-check" {
				sec.Tables = append(sec.Tables, s.Tables...)
			}
		}
		p.Sections = append(p.Sections, sec)
	}
	p.Sections = append(p.Sections, Section{Title: "Text", Pre: text})
	return p
}

func dirs(runs []Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.Dir
	}
	return out
}
