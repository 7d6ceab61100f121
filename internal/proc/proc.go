// Package proc starts and stops the child processes of chatbench: the
// servers a bench or a split launcher runs, the bare calibration server, the
// workers of a distributed driver, and foreign servers such as a node.js
// pomelo cluster.
//
// A child is started with a role (and optionally an id) that names it in the
// log prefix and in errors. Its stdout and stderr lines are copied to one
// log, prefixed "[id] " (or "[role] "), and the last few are kept for the
// error when it fails. It is ready when it prints one line
//
//	READY key=value key=value ...
//
// on stdout (the fields are returned), or when a custom check says so. It is
// stopped with SIGTERM, then SIGKILL after a timeout. On Linux it gets a
// parent-death signal (no orphans when the parent is killed), and it may run
// at a lower priority (nice) than the parent; it runs in its own process
// group, so a terminal's Ctrl-C reaches only the parent, which then stops its
// children in the order it chooses.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stream says which output of a child a line came from.
type Stream int

const (
	Stdout Stream = iota
	Stderr
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// The defaults of Options.ReadyTimeout and Options.StopTimeout, for
// callers whose own options default to the same.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Options configure Start. Zero values mean the documented defaults; only
// Role and Path are required.
type Options struct {
	// Role names the kind of process ("serve", "chat", "worker", "pomelo")
	// in errors and, without an ID, in the log prefix. Required.
	Role string
	// ID names this one process among several of its role ("chat-2"). It is
	// the log prefix when set.
	ID string
	// Path is the program to run (a chatbench child: os.Executable()).
	Path string
	Args []string
	Env  []string // nil: the parent's environment
	Dir  string   // "": the parent's working directory

	// Log receives the child's output lines, one Write per line, each as
	// Prefix + line + "\n". Default os.Stderr; io.Discard drops them.
	// Writes are serialized through a SyncWriter: pass the same *SyncWriter
	// to several processes (and write your own lines through it) to keep
	// their lines whole in a writer that is not safe for concurrent use.
	Log io.Writer
	// Prefix starts every logged line. Default "[ID] ", or "[Role] ";
	// NoPrefix logs the lines as they are (a log file of its own).
	Prefix   string
	NoPrefix bool
	// OnLine, if set, sees every output line (the ready line included)
	// before it is logged, on the goroutine reading that stream. It must
	// not block for long: the child blocks when its pipe is full.
	OnLine func(s Stream, line string)
	// Ready says whether a line is the child's ready line, and its fields.
	// The first line it accepts makes the child ready; that line is not
	// logged or kept in the tail. Default ReadyLine: "READY k=v ..." on
	// stdout. Set Ready or ReadyCheck, not both.
	Ready func(s Stream, line string) (Fields, bool)
	// ReadyCheck, if set, decides readiness instead of a line: it runs once,
	// on its own goroutine, from Start; its ctx ends when the child exits,
	// when WaitReady gives up or when the process is stopped. It returns
	// the fields of the ready child, or an error if it never will be
	// (DialCheck polls TCP addresses, for a server that prints no READY
	// line).
	ReadyCheck func(ctx context.Context, p *Process) (Fields, error)
	// ReadyTimeout bounds WaitReady. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default DefaultStopTimeout.
	StopTimeout time.Duration
	// TailLines is how many of the last output lines are kept for errors.
	// Default 5.
	TailLines int

	// Nice runs the child that many steps nicer than the parent (lower
	// priority), without changing the parent's priority. 0 (or less): the
	// parent's priority. Linux only; elsewhere it is ignored.
	Nice int
	// ParentDeathSignal is sent to the child by the kernel when the parent
	// dies without stopping it (kill -9, a test timeout). Default SIGKILL:
	// no orphans. SIGTERM lets a child that is itself a launcher stop its
	// own children first. Linux only.
	ParentDeathSignal syscall.Signal
	// SameProcessGroup keeps the child in the parent's process group; by
	// default it gets its own, so a terminal's Ctrl-C reaches only the
	// parent.
	SameProcessGroup bool
	// SignalGroup makes Stop and Kill signal the child's whole process
	// group (the child and what it started that stayed in its group: a
	// node.js master and its servers) instead of the child alone. It needs
	// the child's own group, so it cannot be combined with
	// SameProcessGroup.
	SignalGroup bool
}

// Process is a started child. Its methods are safe for concurrent use.
type Process struct {
	o         Options
	cmd       *exec.Cmd
	name      string // "role" or "role id", for errors
	readyLine bool   // readiness is the READY line (the default)
	command   string // the command line, for errors
	log       *SyncWriter
	release   func() // after the child exited: lets the niced forking thread go

	ready     chan struct{} // closed when ready (fields then set)
	readyOnce sync.Once
	readyErr  chan error    // the ReadyCheck's failure, once
	waited    chan struct{} // closed when the child has exited (its output may still be read)
	exited    chan struct{} // closed when it has exited and its output was read
	checked   chan struct{} // closed when the ReadyCheck has returned
	err       error         // Wait's error, valid once exited is closed
	pumps     sync.WaitGroup
	checkStop context.CancelFunc

	mu      sync.Mutex
	fields  Fields
	readyAt time.Time
	tail    []string
}

// Start starts the child and the goroutines that copy its output; it does
// not wait for it to be ready (WaitReady does). The returned Process must be
// stopped (Stop) or waited for (Wait).
func Start(o Options) (*Process, error) {
	readyLine := o.Ready == nil && o.ReadyCheck == nil
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	p := &Process{
		o:         o,
		readyLine: readyLine,
		name:      o.Role,
		ready:     make(chan struct{}),
		readyErr:  make(chan error, 1),
		waited:    make(chan struct{}),
		exited:    make(chan struct{}),
		checked:   make(chan struct{}),
	}
	if o.ID != "" {
		p.name += " " + o.ID
	}
	if w, ok := o.Log.(*SyncWriter); ok {
		p.log = w
	} else {
		p.log = NewSyncWriter(o.Log)
	}
	p.command = strings.Join(append([]string{o.Path}, o.Args...), " ")
	cmd := exec.Command(o.Path, o.Args...)
	cmd.Env, cmd.Dir = o.Env, o.Dir
	setSysProcAttr(cmd, o)
	p.cmd = cmd

	// Our own pipes, not StdoutPipe: Wait then returns when the child exits,
	// even if something it started holds the pipes open.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	release, err := startNiced(cmd, o.Nice)
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %s: %w", p.name, p.command, err)
	}
	p.release = release
	var checkCtx context.Context
	if o.ReadyCheck != nil {
		checkCtx, p.checkStop = context.WithCancel(context.Background())
	}
	p.pumps.Add(2)
	go p.pump(Stdout, outR)
	go p.pump(Stderr, errR)
	go p.wait()
	if o.ReadyCheck != nil {
		go p.check(checkCtx)
	}
	return p, nil
}

// StartReady starts the child and waits until it is ready. If it fails to
// get ready, it is stopped and the error says why, with its last lines.
func StartReady(ctx context.Context, o Options) (*Process, Fields, error) {
	p, err := Start(o)
	if err != nil {
		return nil, nil, err
	}
	f, err := p.WaitReady(ctx)
	if err != nil {
		_ = p.Stop()
		return nil, nil, err
	}
	return p, f, nil
}

// pumpGrace bounds how long, after the child exited, its output is awaited
// before Done: a grandchild may hold the pipes open.
const pumpGrace = 2 * time.Second

func (p *Process) wait() {
	err := p.cmd.Wait()
	p.release()
	close(p.waited)
	flushed := make(chan struct{})
	go func() { p.pumps.Wait(); close(flushed) }()
	t := time.NewTimer(pumpGrace)
	select {
	case <-flushed: // the usual case: the last lines are in the tail
	case <-t.C:
	}
	t.Stop()
	p.err = err
	if p.checkStop != nil {
		// the check ends before Done, so a child ready at once (Started)
		// that exits at once is ready, never "exited before it was ready"
		p.checkStop()
		<-p.checked
	}
	close(p.exited)
}

func (p *Process) check(ctx context.Context) {
	defer close(p.checked)
	f, err := p.o.ReadyCheck(ctx, p)
	if err != nil {
		p.readyErr <- err
		return
	}
	p.markReady(f)
}

func (p *Process) markReady(f Fields) bool {
	first := false
	p.readyOnce.Do(func() {
		first = true
		if f == nil {
			f = Fields{}
		}
		p.mu.Lock()
		p.fields, p.readyAt = f, time.Now()
		p.mu.Unlock()
		close(p.ready)
	})
	return first
}

// maxLine is the longest line kept whole; the rest of a longer line is
// dropped (the child never blocks on a line we cannot hold).
const maxLine = 64 << 10

func (p *Process) pump(s Stream, r *os.File) {
	defer p.pumps.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	skipping := false // the rest of a line too long to keep
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				p.line(s, string(b)+" [line truncated]")
			}
			skipping = true
			continue
		}
		if len(b) > 0 && !skipping {
			p.line(s, strings.TrimRight(string(b), "\r\n"))
		}
		skipping = false
		if err != nil {
			return // io.EOF: the child (and all holders of the pipe) closed it
		}
	}
}

func (p *Process) line(s Stream, line string) {
	if p.o.OnLine != nil {
		p.o.OnLine(s, line)
	}
	if p.o.ReadyCheck == nil {
		select {
		case <-p.ready:
		default:
			if f, ok := p.o.Ready(s, line); ok && p.markReady(f) {
				return
			}
		}
	}
	p.mu.Lock()
	if p.tail = append(p.tail, line); len(p.tail) > p.o.TailLines {
		p.tail = p.tail[1:]
	}
	p.mu.Unlock()
	p.log.WriteLine(p.o.Prefix + line)
}

// WaitReady waits until the child is ready and returns its fields. It fails
// if the child exits first, is not ready within ReadyTimeout, its
// ReadyCheck fails, or ctx ends (then it returns ctx.Err()). It does not
// stop the child; the caller decides. Once ready, it returns at once.
func (p *Process) WaitReady(ctx context.Context) (Fields, error) {
	select {
	case <-p.ready:
		return p.Fields(), nil
	default:
	}
	timer := time.NewTimer(p.o.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p.Fields(), nil
	case <-p.exited:
		select {
		case <-p.ready: // ready, then exited at once: still a success
			return p.Fields(), nil
		default:
		}
		return nil, p.Failure("exited before it was ready")
	case err := <-p.readyErr:
		p.readyErr <- err
		return nil, fmt.Errorf("%s not ready: %w%s", p.name, err, p.lastWords())
	case <-timer.C:
		if p.checkStop != nil {
			p.checkStop()
		}
		what := "printed no READY line"
		if !p.readyLine {
			what = "was not ready"
		}
		return nil, fmt.Errorf("%s %s within %v%s\n  command: %s", p.name, what, p.o.ReadyTimeout, p.lastWords(), p.command)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Failure is an error saying that the child did what (for example "exited
// before it was ready"), how it ended (once it has) and its last lines.
func (p *Process) Failure(what string) error {
	how := ""
	select {
	case <-p.exited:
		how = " (" + exitReason(p.err) + ")"
	default:
	}
	return fmt.Errorf("%s %s%s%s\n  command: %s", p.name, what, how, p.lastWords(), p.command)
}

func (p *Process) lastWords() string {
	if t := p.Tail(); len(t) > 0 {
		return ": " + strings.Join(t, " | ")
	}
	return ""
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Fields returns the ready fields (nil before the child is ready).
func (p *Process) Fields() Fields {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fields
}

// ReadyAt is when the child became ready (zero before).
func (p *Process) ReadyAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyAt
}

// Tail returns the last TailLines output lines, oldest first.
func (p *Process) Tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}

// Role and ID are the Options' Role and ID.
func (p *Process) Role() string { return p.o.Role }
func (p *Process) ID() string   { return p.o.ID }

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited (and its output has been read).
func (p *Process) Done() <-chan struct{} { return p.exited }

// Err is how the child ended (exec.Cmd.Wait's error); valid after Done.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// ExitCode is the child's exit status once it has exited (-1 if a signal
// ended it), and -1 before.
func (p *Process) ExitCode() int {
	select {
	case <-p.waited:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Wait waits for the child to exit and returns how it ended.
func (p *Process) Wait() error {
	<-p.exited
	return p.err
}

// Signal sends sig to the child (to its process group with SignalGroup).
// A child that has exited is not signalled.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.waited:
		return nil
	default:
	}
	if p.o.SignalGroup {
		return signalGroup(p.cmd.Process.Pid, sig)
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the child to exit.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop asks the child to stop (SIGTERM) and kills it (SIGKILL) if it has not
// exited after StopTimeout; the error says so. It returns when the child has
// exited. Stopping an exited child does nothing.
func (p *Process) Stop() error { return Stop(p.o.StopTimeout, p) }

// Stop stops several children at once: SIGTERM to all, then SIGKILL to those
// still running after timeout. It returns when all have exited, with an
// error naming each child that had to be killed.
func Stop(timeout time.Duration, ps ...*Process) error {
	for _, p := range ps {
		if p.checkStop != nil {
			p.checkStop()
		}
		_ = p.Signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var errs []error
	expired := false
	for _, p := range ps {
		if !expired {
			select {
			case <-p.waited:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		select {
		case <-p.waited:
		default:
			_ = p.Signal(syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("%s did not stop within %v of SIGTERM: killed", p.name, timeout))
		}
	}
	for _, p := range ps {
		<-p.exited
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() error {
	if o.Role == "" {
		return errors.New("proc: Options.Role is empty: name the process")
	}
	if o.Path == "" {
		return fmt.Errorf("proc: start %s: Options.Path is empty", o.Role)
	}
	if o.Ready != nil && o.ReadyCheck != nil {
		return fmt.Errorf("proc: start %s: set Ready or ReadyCheck, not both", o.Role)
	}
	if o.SignalGroup && o.SameProcessGroup {
		return fmt.Errorf("proc: start %s: SignalGroup needs the child's own process group, not SameProcessGroup", o.Role)
	}
	if o.Ready == nil {
		o.Ready = ReadyLine
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.NoPrefix {
		o.Prefix = ""
	} else if o.Prefix == "" {
		name := o.Role
		if o.ID != "" {
			name = o.ID
		}
		o.Prefix = "[" + name + "] "
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.TailLines <= 0 {
		o.TailLines = 5
	}
	if o.ParentDeathSignal == 0 {
		o.ParentDeathSignal = syscall.SIGKILL
	}
	return nil
}

// Executable is os.Executable with context in its error: the path of the
// running chatbench binary, which starts its children from itself.
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the chatbench binary: %w", err)
	}
	return filepath.Clean(exe), nil
}

// Command is exec.Command for a child that is run to completion by its
// caller (Run, Output, CombinedOutput) rather than started with Start: it
// gets the same parent-death signal (SIGKILL; Linux only), so it does not
// outlive a parent that is killed, and stays in the parent's process group.
func Command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	setSysProcAttr(cmd, Options{ParentDeathSignal: syscall.SIGKILL, SameProcessGroup: true})
	return cmd
}

// Run starts a child and waits until it exits. When ctx ends first the
// child is stopped (SIGTERM, SIGKILL after StopTimeout). It returns the
// process (nil when it could not start) and how it ended (Wait's error).
func Run(ctx context.Context, o Options) (*Process, error) {
	o.ReadyCheck = nil // no readiness to wait for: a child that exits at once has run
	p, err := Start(o)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Stop()
	}
	return p, p.Wait()
}
