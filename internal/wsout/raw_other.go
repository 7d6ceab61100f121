//go:build !linux

package wsout

import "net"

// rawWriter is the direct-write path, linux only: elsewhere every package
// goes through the writer goroutine.
type rawWriter struct{ ok bool }

func (w *rawWriter) init(net.Conn) {}

func (w *rawWriter) writeFrame([]byte) ([]byte, error) { return nil, errWriteDirect }

func (w *rawWriter) write([]byte) ([]byte, error) { return nil, errWriteDirect }
