package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatbench/chatbench/bench/driver"
	"github.com/chatbench/chatbench/bench/metrics"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux that chatbench runs on).
const clockTicks = 100

// procCPU is one process of a server's process tree.
type procCPU struct {
	pid   int
	name  string        // server id or role, from its command line
	cpu   time.Duration // user + system time so far
	user  time.Duration // of which user time (the rest is the kernel's)
	start bool          // seen in the first sample
}

// treeCPU samples the CPU time of root and every process below it (the
// reference server's launcher and roles, or stock pomelo's master and
// servers), from /proc. Outside Linux it returns nothing.
func treeCPU(root int) map[int]procCPU {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	stats := map[int][]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // state ppid pgrp ... utime(12) stime(13)
		if len(f) < 14 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		stats[pid] = f
	}
	out := map[int]procCPU{}
	todo := []int{root}
	for len(todo) > 0 {
		pid := todo[0]
		todo = todo[1:]
		f, ok := stats[pid]
		if !ok {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		out[pid] = procCPU{pid: pid, name: procName(pid), cpu: time.Duration(ut+st) * time.Second / clockTicks, user: time.Duration(ut) * time.Second / clockTicks}
		todo = append(todo, children[pid]...)
	}
	return out
}

// procName names a server process by its command line: pomelo's id=...
// (the master has none), or chatbench's --role/--id, else the program.
func procName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "?"
	}
	return nameFromArgs(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
}

// nameFromArgs is procName for a command line.
func nameFromArgs(args []string) string {
	prog := filepath.Base(args[0])
	var id, topo string
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "id="):
			id = strings.TrimPrefix(a, "id=")
		case a == "--id" && i+1 < len(args):
			id = args[i+1]
		case strings.HasPrefix(a, "--id="):
			id = strings.TrimPrefix(a, "--id=")
		case a == "--topology" && i+1 < len(args):
			topo = args[i+1]
		}
	}
	switch {
	case id != "":
		return id
	case prog == "node":
		return "pomelo master"
	case topo != "":
		return prog + " serve --topology " + topo
	}
	return prog
}

// cpuDelta is the CPU each process of the tree used between two samples.
func cpuDelta(before, after map[int]procCPU) []procCPU {
	var out []procCPU
	for pid, a := range after {
		b, ok := before[pid]
		a.start = ok
		if ok {
			a.cpu -= b.cpu
			a.user -= b.user
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].name < out[j].name || (out[i].name == out[j].name && out[i].pid < out[j].pid)
	})
	return out
}

// recordCPU puts the server processes' CPU seconds into the run's summary
// (servers, docs/results.md) and writes it again.
func recordCPU(res *driver.Result, procs []procCPU) {
	if res == nil || res.Summary == nil || len(procs) == 0 {
		return
	}
	res.Summary.Servers = res.Summary.Servers[:0]
	for _, p := range procs {
		res.Summary.Servers = append(res.Summary.Servers, metrics.ServerCPU{Name: p.name, PID: p.pid, CPUSeconds: p.cpu.Seconds(), UserSeconds: p.user.Seconds()})
	}
	if res.Dir != "" {
		if err := res.Summary.Write(res.Dir); err != nil {
			fmt.Fprintf(os.Stderr, "chatbench bench: server CPU: %v\n", err)
		}
	}
}

// writeCPU prints the server processes' CPU over wall, and writes the same
// as server-cpu.csv into dir (when dir is not empty).
func writeCPU(out io.Writer, dir string, procs []procCPU, wall time.Duration) {
	if len(procs) == 0 || wall <= 0 {
		return
	}
	var total time.Duration
	var csv strings.Builder
	csv.WriteString("pid,process,cpu_seconds,cores\n")
	parts := make([]string, 0, len(procs))
	for _, p := range procs {
		total += p.cpu
		cores := p.cpu.Seconds() / wall.Seconds()
		fmt.Fprintf(&csv, "%d,%s,%.2f,%.3f\n", p.pid, p.name, p.cpu.Seconds(), cores)
		parts = append(parts, fmt.Sprintf("%s %.1fs", p.name, p.cpu.Seconds()))
	}
	fmt.Fprintf(&csv, ",total,%.2f,%.3f\n", total.Seconds(), total.Seconds()/wall.Seconds())
	fmt.Fprintf(out, "server cpu %.1fs over %.1fs (%.2f cores): %s\n", total.Seconds(), wall.Seconds(), total.Seconds()/wall.Seconds(), strings.Join(parts, ", "))
	if dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "server-cpu.csv"), []byte(csv.String()), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "chatbench bench: server-cpu.csv: %v\n", err)
		}
	}
}
