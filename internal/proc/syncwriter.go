package proc

import (
	"io"
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
