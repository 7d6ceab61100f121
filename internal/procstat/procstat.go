// Package procstat reads the CPU time of a process and its descendants from
// /proc (Linux), so that a command that started a server can say how much
// CPU each server process spent during a run. On other systems it reports
// nothing.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux configuration Go supports without cgo).
const clockTick = 10 * time.Millisecond

// Proc is one process of a tree.
type Proc struct {
	PID, PPID int
	Args      []string      // command line
	CPU       time.Duration // user + system CPU time since the process started
}

// Role names a chatbench server process from its command line: "gate",
// "connector" or "chat" with its id for `serve --role R --id ID`,
// "launcher" for `serve --topology split`, "single" for another `serve`;
// any other process is named by its executable and, when present, a
// pomelo-style serverType=/id= argument.
func (p Proc) Role() (role, id string) {
	flag := func(name string) string {
		for i, a := range p.Args {
			if a == "--"+name && i+1 < len(p.Args) {
				return p.Args[i+1]
			}
			if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
				return v
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok { // pomelo: serverType=connector id=connector-server-1
				return v
			}
		}
		return ""
	}
	serve := false
	for _, a := range p.Args {
		if a == "serve" {
			serve = true
			break
		}
	}
	switch {
	case serve && flag("role") != "":
		return flag("role"), flag("id")
	case serve && strings.EqualFold(flag("topology"), "split"):
		return "launcher", ""
	case serve:
		return "single", ""
	}
	name := "process"
	if len(p.Args) > 0 {
		name = filepath.Base(p.Args[0])
	}
	if t := flag("serverType"); t != "" {
		return name + ":" + t, flag("id")
	}
	return name, ""
}

// Tree returns the process root and all its descendants, root first, then
// by PID. It fails when root cannot be read (it exited, or no /proc).
func Tree(root int) ([]Proc, error) {
	rp, err := read(root)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	children := map[int][]Proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		p, err := read(pid)
		if err != nil {
			continue // exited meanwhile, or not ours to read
		}
		children[p.PPID] = append(children[p.PPID], p)
	}
	out := []Proc{rp}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].PID]...)
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].PID < out[1+j].PID })
	return out, nil
}

// read parses /proc/<pid>/stat and cmdline.
func read(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, fmt.Errorf("procstat: %w", err)
	}
	p, err := parseStat(b)
	if err != nil {
		return Proc{}, fmt.Errorf("procstat: /proc/%d/stat: %w", pid, err)
	}
	if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.Args = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
	}
	return p, nil
}

// parseStat reads pid, ppid, utime and stime of a /proc/<pid>/stat line:
// "pid (comm) state ppid ... utime stime ..." where comm may hold spaces
// and parentheses (so the fields start after the LAST ')').
func parseStat(b []byte) (Proc, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return Proc{}, fmt.Errorf("no (comm) in %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return Proc{}, fmt.Errorf("pid: %w", err)
	}
	f := strings.Fields(string(b[close+1:]))
	// f[0] state, f[1] ppid, ... f[11] utime, f[12] stime (fields 14 and 15 of proc(5))
	if len(f) < 13 {
		return Proc{}, fmt.Errorf("%d fields after comm, want at least 13", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Proc{}, fmt.Errorf("bad ppid/utime/stime %q %q %q", f[1], f[11], f[12])
	}
	return Proc{PID: pid, PPID: ppid, CPU: time.Duration(ut+st) * clockTick}, nil
}

// Used is the CPU each process of after spent since before (both from Tree
// of the same root): a process only in after counts from its start; one
// only in before (it exited) is left out, its time unknown.
func Used(before, after []Proc) []Proc {
	was := map[int]time.Duration{}
	for _, p := range before {
		was[p.PID] = p.CPU
	}
	out := make([]Proc, 0, len(after))
	for _, p := range after {
		p.CPU = max(p.CPU-was[p.PID], 0)
		out = append(out, p)
	}
	return out
}
