package proc

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatbench/chatbench/internal/testwait"
)

// sh returns Options running script with /bin/sh, logging to log.
func sh(script string, log *Buffer) Options {
	return Options{Role: "serve", Path: "/bin/sh", Args: []string{"-c", script}, Log: log,
		ReadyTimeout: 5 * time.Second, StopTimeout: 5 * time.Second}
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.True(t, 10*time.Second, what, cond)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartReady(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		fields  Fields   // when ready
		errHas  []string // when not
	}{
		{name: "ready", script: "echo starting; echo READY gate=127.0.0.1:4001 http=- topology=single; exec sleep 30",
			fields: Fields{"gate": "127.0.0.1:4001", "http": "-", "topology": "single"}},
		{name: "ready then more lines", script: "echo READY a=1; echo READY a=2 >&2; exec sleep 30", fields: Fields{"a": "1"}},
		{name: "dies first", script: "echo 'listen tcp: address already in use' >&2; exit 3",
			errHas: []string{"serve exited before it was ready", "exit status 3", "address already in use", "command: /bin/sh -c"}},
		{name: "never ready", script: "echo 'still starting' >&2; exec sleep 30", timeout: 300 * time.Millisecond,
			errHas: []string{"printed no READY line within 300ms", "still starting"}},
		{name: "READY on stderr does not count", script: "echo READY a=1 >&2; exec sleep 30", timeout: 300 * time.Millisecond,
			errHas: []string{"no READY line", "READY a=1"}},
		{name: "malformed READY line", script: "echo READY gate; exec sleep 30", timeout: 300 * time.Millisecond,
			errHas: []string{"no READY line", "READY gate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &Buffer{}
			o := sh(tc.script, log)
			if tc.timeout > 0 {
				o.ReadyTimeout = tc.timeout
			}
			p, f, err := StartReady(context.Background(), o)
			if tc.errHas != nil {
				if err == nil {
					p.Stop()
					t.Fatalf("ready with %v, want an error", f)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			if f.String() != tc.fields.String() {
				t.Errorf("fields %v, want %v", f, tc.fields)
			}
			if p.Fields().String() != f.String() || p.ReadyAt().IsZero() {
				t.Errorf("Fields() %v ReadyAt %v after ready", p.Fields(), p.ReadyAt())
			}
		})
	}
}

// Output lines go to the log with the prefix, the READY line does not; the
// tail keeps the last lines of both streams.
func TestLogPrefixAndTail(t *testing.T) {
	tests := []struct {
		name, id, prefix, want string
	}{
		{"role", "", "", "[serve] "},
		{"id", "chat-2", "", "[chat-2] "},
		{"prefix", "chat-2", "chat| ", "chat| "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &Buffer{}
			o := sh("for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done; echo READY x=1; exit 7", log)
			o.ID, o.Prefix, o.TailLines = tc.id, tc.prefix, 3
			p, err := Start(o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitReady(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "exit status 7") {
				t.Fatalf("Wait: %v, want exit status 7", err)
			}
			got := log.String()
			for i := 1; i <= 6; i++ {
				for _, l := range []string{"out", "err"} {
					if want := tc.want + l + strconv.Itoa(i) + "\n"; !strings.Contains(got, want) {
						t.Errorf("log lacks %q:\n%s", want, got)
					}
				}
			}
			if strings.Contains(got, "READY") {
				t.Errorf("the READY line was logged:\n%s", got)
			}
			tail := p.Tail()
			if len(tail) != 3 {
				t.Fatalf("tail %q, want 3 lines", tail)
			}
			// both streams feed the tail; their order against each other is the kernel's
			for _, l := range tail {
				if !strings.HasSuffix(l, "5") && !strings.HasSuffix(l, "6") && !strings.HasSuffix(l, "4") {
					t.Errorf("tail %q holds an early line", tail)
				}
			}
			if err := p.Failure("crashed"); !strings.Contains(err.Error(), "crashed (exit status 7): ") {
				t.Errorf("Failure: %v", err)
			}
		})
	}
}

// A child run to completion: ready when started, its exit code, its lines
// logged as they are.
func TestRunToCompletion(t *testing.T) {
	tests := []struct {
		script string
		code   int
	}{
		{"echo out; echo err >&2; exit 0", 0},
		{"echo out; echo err >&2; exit 99", 99},
		{"echo out; echo err >&2; kill -9 $$", -1},
	}
	for _, tc := range tests {
		t.Run(tc.script, func(t *testing.T) {
			log := &Buffer{}
			o := sh(tc.script, log)
			o.ReadyCheck, o.NoPrefix, o.Prefix = Started, true, "ignored "
			p, _, err := StartReady(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			p.Wait()
			if got := p.ExitCode(); got != tc.code {
				t.Errorf("ExitCode %d, want %d (%v)", got, tc.code, p.Err())
			}
			if got := log.String(); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") || strings.Contains(got, "[") || strings.Contains(got, "ignored") {
				t.Errorf("log %q, want the lines as they are", got)
			}
		})
	}
}

func TestOnLine(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]Stream{}
	o := sh("echo a; echo b >&2; echo READY k=v; exit 0", &Buffer{})
	o.OnLine = func(s Stream, line string) {
		mu.Lock()
		seen[line] = s
		mu.Unlock()
	}
	p, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]Stream{"a": Stdout, "b": Stderr, "READY k=v": Stdout}
	for l, s := range want {
		if got, ok := seen[l]; !ok || got != s {
			t.Errorf("line %q: seen on %v (%v), want %v", l, got, ok, s)
		}
	}
}

// A custom Ready matcher: a node.js server's log line, on either stream.
func TestCustomReadyLine(t *testing.T) {
	log := &Buffer{}
	o := sh("echo '[2026-12-03] [INFO] all servers startup in 812 ms' >&2; exec sleep 30", log)
	o.Ready = func(s Stream, line string) (Fields, bool) {
		if strings.Contains(line, "all servers startup") {
			return Fields{"line": "startup"}, true
		}
		return nil, false
	}
	p, f, err := StartReady(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if f.Get("line") != "startup" {
		t.Errorf("fields %v", f)
	}
}

func TestReadyCheck(t *testing.T) {
	t.Run("dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		o := sh("exec sleep 30", &Buffer{})
		o.ReadyCheck = DialCheck(ln.Addr().String())
		p, f, err := StartReady(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		if f.Get("addr0") != ln.Addr().String() {
			t.Errorf("fields %v", f)
		}
	})
	t.Run("dial refused until timeout", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		o := sh("echo booting; exec sleep 30", &Buffer{})
		o.ReadyCheck, o.ReadyTimeout = DialCheck(addr), 300*time.Millisecond
		_, _, err = StartReady(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "serve was not ready within 300ms") {
			t.Fatalf("err %v, want not ready within 300ms", err)
		}
	})
	t.Run("check fails", func(t *testing.T) {
		o := sh("exec sleep 30", &Buffer{})
		o.ReadyCheck = func(context.Context, *Process) (Fields, error) { return nil, errors.New("bad config") }
		_, _, err := StartReady(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "serve not ready: bad config") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("child exits first", func(t *testing.T) {
		o := sh("echo 'Cannot find module pomelo' >&2; exit 1", &Buffer{})
		o.ReadyCheck = func(ctx context.Context, _ *Process) (Fields, error) {
			<-ctx.Done() // ends when the child exits
			return nil, ctx.Err()
		}
		_, _, err := StartReady(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "Cannot find module pomelo") {
			t.Fatalf("err %v, want the child's last words", err)
		}
	})
}

func TestWaitReadyContext(t *testing.T) {
	p, err := Start(sh("exec sleep 30", &Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady: %v, want context.Canceled", err)
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name   string
		script string
		killed bool
	}{
		{"exits on SIGTERM", "trap 'echo bye; exit 0' TERM; echo READY; while :; do sleep 0.05; done", false},
		{"ignores SIGTERM", "trap '' TERM; echo READY; while :; do sleep 0.05; done", true},
		{"already exited", "echo READY; exit 0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &Buffer{}
			o := sh(tc.script, log)
			o.StopTimeout = 300 * time.Millisecond
			p, _, err := StartReady(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Stop()
			if tc.killed != (err != nil) {
				t.Fatalf("Stop: %v, want killed %v", err, tc.killed)
			}
			if tc.killed && !strings.Contains(err.Error(), "serve did not stop within 300ms of SIGTERM: killed") {
				t.Errorf("Stop: %v", err)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the child exited")
			}
			if alive(p.Pid()) {
				t.Errorf("pid %d still alive", p.Pid())
			}
		})
	}
}

// Stop of several: one SIGTERM each at once, one shared deadline, an error
// naming only the one that was killed.
func TestStopSeveral(t *testing.T) {
	var ps []*Process
	for i, script := range []string{
		"trap 'exit 0' TERM; echo READY; while :; do sleep 0.05; done",
		"trap '' TERM; echo READY; while :; do sleep 0.05; done",
		"trap 'exit 0' TERM; echo READY; while :; do sleep 0.05; done",
	} {
		o := sh(script, &Buffer{})
		o.ID = "n-" + strconv.Itoa(i)
		p, _, err := StartReady(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	err := Stop(300*time.Millisecond, ps...)
	if err == nil || !strings.Contains(err.Error(), "serve n-1 did not stop") || strings.Contains(err.Error(), "n-0") || strings.Contains(err.Error(), "n-2") {
		t.Fatalf("Stop: %v, want only n-1 killed", err)
	}
	for _, p := range ps {
		if alive(p.Pid()) {
			t.Errorf("%s (pid %d) still alive", p.ID(), p.Pid())
		}
	}
}

// SignalGroup stops what the child started too (a node master's servers).
func TestSignalGroup(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run("group="+strconv.FormatBool(group), func(t *testing.T) {
			o := sh("sleep 30 & echo READY grandchild=$!; wait", &Buffer{})
			o.SignalGroup = group
			o.StopTimeout = 2 * time.Second
			p, f, err := StartReady(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			gc, err := strconv.Atoi(f.Get("grandchild"))
			if err != nil {
				t.Fatalf("READY fields %v: %v", f, err)
			}
			t.Cleanup(func() { _ = syscall.Kill(gc, syscall.SIGKILL) })
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			if group {
				eventually(t, "the grandchild is stopped with its group", func() bool { return !alive(gc) })
			} else if !alive(gc) {
				t.Errorf("without SignalGroup the grandchild was stopped too")
			}
		})
	}
}

// A grandchild that keeps the child's pipes open does not keep Done from
// closing once the child exited.
func TestDoneDespiteHeldPipes(t *testing.T) {
	o := sh("sleep 30 & echo READY grandchild=$!; exit 0", &Buffer{})
	p, f, err := StartReady(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if gc, err := strconv.Atoi(f.Get("grandchild")); err == nil {
		t.Cleanup(func() { _ = syscall.Kill(gc, syscall.SIGKILL) })
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after the child exited")
	}
}

// A line longer than the reader holds is cut, not a stall of the child.
func TestLongLine(t *testing.T) {
	log := &Buffer{}
	o := sh("head -c 200000 /dev/zero | tr '\\0' x; echo; echo READY ok=1; exec sleep 30", log)
	p, f, err := StartReady(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if f.Get("ok") != "1" {
		t.Errorf("fields %v", f)
	}
	if got := log.String(); !strings.Contains(got, "[line truncated]") || len(got) > 2*maxLine {
		t.Errorf("log of %d bytes, want one truncated line", len(got))
	}
}

func TestOptionErrors(t *testing.T) {
	check := func(context.Context, *Process) (Fields, error) { return nil, nil }
	tests := []struct {
		name   string
		o      Options
		errHas string
	}{
		{"no role", Options{Path: "/bin/true"}, "Options.Role is empty"},
		{"no path", Options{Role: "serve"}, "start serve: Options.Path is empty"},
		{"both readiness", Options{Role: "serve", Path: "/bin/true", Ready: ReadyLine, ReadyCheck: check}, "set Ready or ReadyCheck, not both"},
		{"group conflict", Options{Role: "serve", Path: "/bin/true", SignalGroup: true, SameProcessGroup: true}, "SignalGroup needs the child's own process group"},
		{"missing binary", Options{Role: "serve", Path: "/nonexistent/chatbench", Args: []string{"serve"}}, "start serve: /nonexistent/chatbench serve: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(tc.o)
			if err == nil {
				p.Stop()
				t.Fatal("started, want an error")
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q lacks %q", err, tc.errHas)
			}
		})
	}
}

func TestParseReady(t *testing.T) {
	tests := []struct {
		line   string
		want   string // Fields.String()
		errHas string
	}{
		{"READY", "READY", ""},
		{"READY gate=127.0.0.1:1 http=- connectors=a:1,b:2", "READY connectors=a:1,b:2 gate=127.0.0.1:1 http=-", ""},
		{"READY  url=nats://h:1?a=b  ", "READY url=nats://h:1?a=b", ""},
		{"listening 127.0.0.1:1", "", "not a READY line"},
		{"READYX a=1", "", "not a READY line"},
		{"", "", "not a READY line"},
		{"READY gate", "", `"gate" is not key=value`},
		{"READY =1", "", `"=1" is not key=value`},
		{"READY a=1 a=2", "", `key "a" given twice`},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			f, err := ParseReady(tc.line)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("ParseReady: %v %v, want error with %q", f, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != tc.want {
				t.Errorf("got %s, want %s", f, tc.want)
			}
		})
	}
}

func TestFormatReady(t *testing.T) {
	line := FormatReady("role", "chat", "client", "", "http", "127.0.0.1:9")
	if line != "READY role=chat client=- http=127.0.0.1:9" {
		t.Fatalf("FormatReady: %q", line)
	}
	f, err := ParseReady(line)
	if err != nil {
		t.Fatal(err)
	}
	if f.Get("client") != "" || f.Get("http") != "127.0.0.1:9" || f.Get("missing") != "" {
		t.Errorf("read back %v", f)
	}
	for _, bad := range [][]string{{"odd"}, {"a b", "1"}, {"a", "1 2"}, {"", "1"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FormatReady(%q) did not panic", bad)
				}
			}()
			FormatReady(bad...)
		}()
	}
}

// helperEnv makes the test binary a parent that starts a child and prints
// its pid (TestParentDeath kills that parent).
const helperEnv = "PROC_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		p, err := Start(Options{Role: "sleeper", Path: "/bin/sh", Args: []string{"-c", "echo READY; exec sleep 60"}})
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		if _, err := p.WaitReady(context.Background()); err != nil {
			os.Exit(1)
		}
		run := Command("/bin/sleep", "60") // a child run to completion
		if err := run.Start(); err != nil {
			os.Exit(1)
		}
		os.Stdout.WriteString(FormatReady("pid", strconv.Itoa(p.Pid()), "command", strconv.Itoa(run.Process.Pid)) + "\n")
		select {} // until killed
	}
	os.Exit(m.Run())
}
