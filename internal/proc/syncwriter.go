package proc

import (
	"io"
	"strings"
	"sync"
)

// SyncWriter writes whole lines to W from several goroutines, one Write per
// line. Share one between processes (Options.Log) and your own messages to
// keep every line whole.
type SyncWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewSyncWriter returns a SyncWriter writing to w.
func NewSyncWriter(w io.Writer) *SyncWriter { return &SyncWriter{w: w} }

// Write writes p as it is, in one Write to the underlying writer.
func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// WriteLine writes line and a newline in one Write. Errors of the underlying
// writer are dropped: a log line that cannot be written must not stop a
// child (whose pipe would fill).
func (s *SyncWriter) WriteLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(append(s.buf[:0], line...), '\n')
	_, _ = s.w.Write(s.buf)
}

// Buffer keeps children's output (Options.Log) in memory, to read while
// they still write: for tests, which print it when they fail. The zero
// Buffer is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
