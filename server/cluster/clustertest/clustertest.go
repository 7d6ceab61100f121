// Package clustertest helps tests outside server/cluster run the split
// topology as real processes: it builds the chatbench binary once per test
// binary and starts processes that die with the test.
//
// It imports only internal/proc, so any test may use it (server/cluster's
// own process tests included). Use it from TestMain so the binaries are removed
// afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(clustertest.Main(m)) }
package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chatbench/chatbench/internal/proc"
)

// ChatbenchPkg is the package of the chatbench command.
const ChatbenchPkg = "github.com/chatbench/chatbench/cmd/chatbench"

type build struct {
	once sync.Once
	path string
	err  error
}

var (
	mu     sync.Mutex
	dir    string                // shared temporary directory of the built binaries
	builds = map[string]*build{} // by pkg
)

// Build runs `go build` of pkg once per test binary (later calls return the
// first result) into a shared temporary directory, removed by Main. name is
// the file name of the binary.
func Build(pkg, name string) (string, error) {
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "chatbench-clustertest-")
		if err != nil {
			mu.Unlock()
			return "", err
		}
		dir = d
	}
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	out := filepath.Join(dir, name)
	mu.Unlock()
	b.once.Do(func() {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
			return
		}
		b.path = out
	})
	return b.path, b.err
}

// Chatbench returns the chatbench binary, built once per test binary and
// without -race: the processes are the system under test, the race detector
// covers the in-process tests. It skips the test with -short and fails it if
// the build fails.
func Chatbench(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("process tests build the chatbench binary; skipped with -short")
	}
	p, err := Build(ChatbenchPkg, "chatbench")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Command is exec.Command for a process that must not outlive the test
// process: on Linux the kernel kills it (SIGKILL) when the test process dies,
// for example on a test timeout, where no t.Cleanup runs (proc.Command).
func Command(bin string, args ...string) *exec.Cmd { return proc.Command(bin, args...) }

// Main runs the tests, removes what Build built and returns the exit code.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
	}
	return code
}
