package server_test

import (
	"testing"

	"github.com/chatbench/chatbench/server"
	"github.com/chatbench/chatbench/server/servertest"
)

func TestSuiteSingle(t *testing.T) {
	servertest.RunSuite(t, func(t *testing.T) servertest.Target {
		s := servertest.Start(t, server.Options{Connectors: 2})
		return servertest.Target{GateAddr: s.GateAddr}
	})
}
