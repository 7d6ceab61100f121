package metrics

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// DetectMachine fingerprints the current machine (Linux /proc; best effort
// elsewhere: unknown fields stay empty).
func DetectMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU()}
	m.Hostname, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryBytes = kb * 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Fingerprint = Fingerprint(m)
	return m
}

// Fingerprint is a short stable hash of what makes machines comparable: cpu
// model, logical cores, memory rounded to GiB, os and arch (not the
// hostname or the kernel).
func Fingerprint(m Machine) string {
	gib := (m.MemoryBytes + 1<<29) >> 30
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d|%s|%s", m.CPUModel, m.Cores, gib, m.OS, m.Arch)))
	return hex.EncodeToString(sum[:6])
}

// LoadAvg is /proc/loadavg's three averages ("?" where there is none).
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
