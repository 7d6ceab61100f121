// Package browsertest starts the headless Chromium that the browser tests
// drive through chromedp: Debian's chromium package, or the binary named by
// $CHROMIUM. Without a browser a test skips, except with CI=true, where it
// fails (CI installs the browser).
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the browser: $CHROMIUM, /usr/bin/chromium, or chromium on
// PATH. Without one it skips t (what names the test in the message), or
// fails it under CI=true.
func Path(t testing.TB, what string) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	const why = "Debian's chromium is not installed (apt-get install -y chromium; or set CHROMIUM=/path)"
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but " + why)
	}
	t.Skip("skipping " + what + ": " + why)
	return ""
}

// Options are the browser's settings.
type Options struct {
	// Width and Height are the window size; zero is 1280x800.
	Width, Height int
	// Extra are allocator options added to the defaults (headless, no
	// sandbox, no GPU, no background networking, a fresh profile).
	Extra []chromedp.ExecAllocatorOption
}

// Start finds the browser (see Path), starts it with a fresh profile in a
// temporary directory and returns its context: open tabs with
// chromedp.NewContext on it. The browser stops when t ends.
func Start(t testing.TB, what string, o Options) context.Context {
	t.Helper()
	exe := Path(t, what)
	if o.Width == 0 || o.Height == 0 {
		o.Width, o.Height = 1280, 800
	}
	userData := t.TempDir() // registered first, so removed after the browser is gone
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(o.Width, o.Height),
	)
	opts = append(opts, o.Extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(cancelBrowser)
	// The first Do starts the browser and owns it: no timeout on its context.
	start := time.Now()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	t.Logf("browser %s started in %v", exe, time.Since(start).Round(time.Millisecond))
	return browserCtx
}
