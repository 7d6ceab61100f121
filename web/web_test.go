package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path string
		status       int
		ctype        string
		contains     string
	}{
		{"GET", "/", 200, "text/html", `<script type="module" src="app.js">`},
		{"GET", "/index.html", 301, "", ""}, // FileServer canonicalises to "/"
		{"GET", "/style.css", 200, "text/css", "body"},
		{"GET", "/app.js", 200, "text/javascript", "import"},
		{"GET", "/pomelo.js", 200, "text/javascript", "export class PomeloClient"},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/nope.js", 404, "", ""},
		{"POST", "/", 405, "", ""},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want prefix %q", ct, tc.ctype)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.status == 200 {
				if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("Content-Security-Policy %q lacks script-src 'self'", csp)
				}
			}
		})
	}
}

// TestJavaScript runs the protocol client's unit tests (web/jstest) with
// Node's built-in test runner, so `go test ./...` covers them too.
func TestJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; CI must run the JavaScript tests (node --test web/)")
		}
		t.Skip("node is not installed: skipping the JavaScript unit tests (run them with: node --test web/)")
	}
	if testing.Short() {
		t.Skip("-short: skipping the JavaScript unit tests")
	}
	start := time.Now()
	cmd := exec.Command(node, "--test", "jstest/")
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test jstest/ failed after %v: %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
	}
	t.Logf("node --test jstest/ passed in %v", time.Since(start).Round(time.Millisecond))
}
