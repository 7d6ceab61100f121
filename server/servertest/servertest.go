// Package servertest starts real reference servers for tests: on random
// loopback ports, ready when Start returns, stopped in t.Cleanup.
package servertest

import (
	"context"
	"testing"
	"time"

	"github.com/chatbench/chatbench/server"
)

// Server is a running test server.
type Server struct {
	*server.Server
}

// Start runs a single-process server with opts; every port left at 0 is
// random. It fails the test if the server cannot start.
func Start(t testing.TB, opts server.Options) *Server {
	t.Helper()
	for _, p := range []*int{&opts.GatePort, &opts.ConnectorPort, &opts.HTTPPort} {
		if *p == 0 {
			*p = -1
		}
	}
	s, err := server.Start(opts)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown server: %v", err)
		}
	})
	return &Server{s}
}
