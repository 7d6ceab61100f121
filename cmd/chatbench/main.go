// Command chatbench is the reference pomelo chat server and its load-testing
// harness in one binary. Each subcommand lives in its own file and registers
// itself in init; the logic lives in packages that tests import.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// command is one subcommand: it parses its own flags and runs until ctx ends.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// errUsage marks errors already explained by flag parsing (exit code 2).
var errUsage = errors.New("usage")

// usageErr is a usage error explained by its message: main prints it and
// exits 2.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: chatbench <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'chatbench <command> --help' for its flags")
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// exitError makes a command exit with a specific code (e.g. bench's 99 for
// failed thresholds); its message, if any, is printed like any error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// run executes one command line and returns the process exit code: 0 done,
// 1 failed, 2 usage error (explained on stderr), or a command's exitError code.
func run(args []string, stderr io.Writer) int {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) < 1 {
			return 2
		}
		return 0
	}
	name := args[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "chatbench: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:])
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage { // a bare errUsage was explained where it arose
			fmt.Fprintf(stderr, "chatbench %s: %s\n", name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		}
		fmt.Fprintf(stderr, "run 'chatbench %s --help' for its flags\n", name)
		return 2
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "chatbench %s: %v\n", name, ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "chatbench %s: %v\n", name, err)
	return 1
}

// newFlags returns a flag set that reports errors to the caller instead of exiting.
func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("chatbench "+name, pflag.ContinueOnError)
	fs.SortFlags = false
	addProfileFlags(fs) // profile.go
	return fs
}

// parseFlags parses args and turns a bad flag into errUsage after printing why.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	return applyProfileFlags(fs)
}
