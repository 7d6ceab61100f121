package proc

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Fields are the key=value pairs of a READY line.
type Fields map[string]string

// Get returns the value of key; "" if it is missing or "-" (the READY
// lines' word for "none").
func (f Fields) Get(key string) string {
	if v := f[key]; v != "-" {
		return v
	}
	return ""
}

// String is the fields as a READY line, keys sorted.
func (f Fields) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("READY")
	for _, k := range keys {
		b.WriteString(" " + k + "=" + f[k])
	}
	return b.String()
}

// FormatReady makes the READY line a child prints on stdout when it is ready
// to be used, from key, value pairs in the order given. An empty value is
// written "-". It panics on an odd number of arguments (a programming
// error), and on a key or value that ParseReady would not read back.
func FormatReady(kv ...string) string {
	if len(kv)%2 != 0 {
		panic("proc.FormatReady: odd number of arguments")
	}
	var b strings.Builder
	b.WriteString("READY")
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if v == "" {
			v = "-"
		}
		if k == "" || strings.ContainsAny(k, "= \t\r\n") || strings.ContainsAny(v, " \t\r\n") {
			panic(fmt.Sprintf("proc.FormatReady: %q=%q cannot be read back", k, v))
		}
		b.WriteString(" " + k + "=" + v)
	}
	return b.String()
}

// ParseReady reads a line "READY k=v k=v ...": words separated by spaces,
// each a key, "=" and a value (the value may hold "="; "-" means none, see
// Fields.Get). A line that is not a READY line, or a word without "=" or
// with an empty key, or a key given twice, is an error.
func ParseReady(line string) (Fields, error) {
	words := strings.Fields(line)
	if len(words) == 0 || words[0] != "READY" {
		return nil, fmt.Errorf("not a READY line: %q", line)
	}
	f := make(Fields, len(words)-1)
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("READY line %q: %q is not key=value", line, w)
		}
		if _, dup := f[k]; dup {
			return nil, fmt.Errorf("READY line %q: key %q given twice", line, k)
		}
		f[k] = v
	}
	return f, nil
}

// ReadyLine is the default Options.Ready: a READY line on stdout. A line
// that starts with "READY " but does not parse is not taken as ready (it is
// logged, so the timeout's error shows it).
func ReadyLine(s Stream, line string) (Fields, bool) {
	if s != Stdout || !strings.HasPrefix(line, "READY") {
		return nil, false
	}
	f, err := ParseReady(line)
	return f, err == nil
}

// Started is an Options.ReadyCheck for a child that is ready as soon as it
// runs (one that is run to completion, such as a chatbench bench).
func Started(context.Context, *Process) (Fields, error) { return Fields{}, nil }

// DialCheck returns an Options.ReadyCheck for a server that prints no READY
// line: the child is ready once every addr (host:port) accepts a TCP
// connection. It polls every 50ms. The fields are addr0=..., addr1=...
func DialCheck(addrs ...string) func(ctx context.Context, p *Process) (Fields, error) {
	return func(ctx context.Context, p *Process) (Fields, error) {
		if len(addrs) == 0 {
			return nil, fmt.Errorf("DialCheck: no addresses")
		}
		f := Fields{}
		var d net.Dialer
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i, a := range addrs {
			for {
				dctx, cancel := context.WithTimeout(ctx, time.Second)
				c, err := d.DialContext(dctx, "tcp", a)
				cancel()
				if err == nil {
					c.Close()
					f[fmt.Sprintf("addr%d", i)] = a
					break
				}
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("%s never accepted a connection: %w", a, err)
				case <-tick.C:
				}
			}
		}
		return f, nil
	}
}
