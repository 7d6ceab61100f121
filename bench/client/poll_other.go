//go:build !linux

package client

import (
	"context"
	"net"
)

// Without epoll every client uses its own reader goroutine.

type poller struct{}

type sockConn struct{}

func (s *sockConn) shutdownRead() {}

func (f *Fleet) dialSock(ctx context.Context, network, addr string) (net.Conn, error) {
	return f.dialTCP(ctx, network, addr)
}

type pollers struct{}

func (ps *pollers) attach(*Fleet, *Client) (bool, error) { return false, nil }
func (ps *pollers) stop()                                {}
func (ps *pollers) running() int                         { return 0 }
func (rx *rxState) wake()                                {}
