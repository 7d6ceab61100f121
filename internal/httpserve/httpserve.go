// Package httpserve runs the HTTP servers of one chatbench process (its
// websocket ports and its /healthz and /metrics port) and closes them
// together. The zero Group is ready to use.
package httpserve

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Group is a set of HTTP servers, each on its own listener.
type Group struct {
	mu      sync.Mutex
	servers []*http.Server
	wg      sync.WaitGroup
}

// Serve serves h on l on its own goroutine until Close. The server's own
// errors (a client's bad request) go to log at debug level; a failure of
// the listener at error level.
func (g *Group) Serve(l net.Listener, h http.Handler, log *slog.Logger) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	g.mu.Lock()
	g.servers = append(g.servers, hs)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "addr", l.Addr().String(), "err", err)
		}
	}()
}

// Close closes every listener and the connections still handled by the
// servers; hijacked connections (websockets) are the caller's to close.
// Closing again does nothing.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, hs := range g.servers {
		_ = hs.Close()
	}
}

// Wait waits until every Serve has returned (after Close).
func (g *Group) Wait() { g.wg.Wait() }
