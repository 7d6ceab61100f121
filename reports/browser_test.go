package reports

// The browser test: headless Chromium (Debian's chromium package) driven by
// chromedp opens report.html files from disk (file://, no server, no
// network) and checks that they render: no console error or warning, no
// exception, every inline image decoded. Screenshots are kept in
// results/reports/. Without /usr/bin/chromium the test skips, except with
// CI=true where it fails (CI installs the browser), as the web smoke test.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/chatbench/chatbench/internal/browsertest"
)

func TestReportInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the report browser test")
	}
	shots, err := filepath.Abs(filepath.Join("..", "results", "reports"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	run, sweep := renderRecorded(t) // the sweep has a failed run: the page shows it

	browserCtx := browsertest.Start(t, "the report browser test", browsertest.Options{Width: 1200, Height: 900})
	// A control: a page that breaks the rules (an image from the network,
	// refused by the reports' content security policy) must be caught.
	broken := filepath.Join(t.TempDir(), "broken.html")
	if err := os.WriteFile(broken, []byte(`<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:">`+
		`</head><body><p id="verdict">x</p><img src="https://example.invalid/x.png"></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, page string
		broken     bool
	}{
		{"run", filepath.Join(run, HTMLFile), false},
		{"sweep", filepath.Join(sweep, HTMLFile), false},
		{"control", broken, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, cancel := chromedp.NewContext(browserCtx)
			defer cancel()
			var mu sync.Mutex
			var problems []string
			note := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				problems = append(problems, fmt.Sprintf(format, args...))
			}
			if err := chromedp.Do(tab); err != nil { // the tab's first Do creates it: no timeout
				t.Fatal(err)
			}
			if err := chromedp.Listen(tab, func(ev any) {
				switch ev := ev.(type) {
				case *runtime.EventConsoleAPICalled:
					if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
						note("console %s", ev.Type)
					}
				case *runtime.EventExceptionThrown:
					note("exception: %s", ev.ExceptionDetails.Text)
				case *log.EventEntryAdded:
					if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
						note("%s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancelT := context.WithTimeout(tab, 30*time.Second)
			defer cancelT()
			if err := chromedp.Do(ctx, chromedp.Navigate("file://"+tt.page), chromedp.WaitVisible("#verdict")); err != nil {
				t.Fatalf("open %s: %v", tt.page, err)
			}
			type imgs struct {
				Total, Decoded int
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[imgs](
				`(() => { const a = [...document.images]; return {Total: a.length, Decoded: a.filter(i => i.complete && i.naturalWidth >= 700).length}; })()`))
			if err != nil {
				t.Fatal(err)
			}
			if tt.broken {
				mu.Lock()
				defer mu.Unlock()
				if len(problems) == 0 || got.Decoded != 0 {
					t.Fatalf("the control page's refused image went unnoticed: problems %q, %d images decoded", problems, got.Decoded)
				}
				return
			}
			if got.Total == 0 || got.Decoded != got.Total {
				t.Fatalf("%d of %d images decoded", got.Decoded, got.Total)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
			if err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(shots, tt.name+"-report.png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d images, screenshot %s", tt.page, got.Total, shot)
			mu.Lock()
			defer mu.Unlock()
			if len(problems) > 0 {
				t.Fatalf("the page reported problems: %q", problems)
			}
		})
	}
}
