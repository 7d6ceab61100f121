package main

import (
	"net"
	"time"

	"github.com/chatbench/chatbench/pomelo"
	"github.com/chatbench/chatbench/server"
)

// checkServeFlags rejects flag values that would start a server that cannot
// work (every frame too big, every session timed out, an address clients
// cannot dial), naming the flag and the fix.
func checkServeFlags(o *server.Options) error {
	ports := []struct {
		flag string
		v    int
	}{{"--gate-port", o.GatePort}, {"--connector-port", o.ConnectorPort}, {"--http-port", o.HTTPPort}}
	for _, p := range ports {
		if p.v < -1 || p.v > 65535 {
			return usageErr("%s %d: use a port 1-65535, or -1 for a free one", p.flag, p.v)
		}
	}
	if o.Connectors < 1 {
		return usageErr("--connectors %d: at least 1", o.Connectors)
	}
	if o.DeliveryWork < 0 || o.DeliveryWork > time.Millisecond {
		return usageErr("--test-delivery-work %v: use 0 (none) up to 1ms per delivery", o.DeliveryWork)
	}
	nonNegative := []struct {
		flag, zero string
		v          int
	}{
		{"--max-package", "65536", o.Connector.MaxPackageBytes},
		{"--max-queue", "4 MiB", o.Connector.MaxQueueBytes},
		{"--max-content", "8192", o.Chat.MaxContentBytes},
		{"--max-rooms", "unlimited", o.Rooms.MaxRooms},
		{"--max-members", "unlimited", o.Rooms.MaxMembers},
	}
	for _, n := range nonNegative {
		if n.v < 0 {
			return usageErr("%s %d: use a positive size, or 0 for the default (%s)", n.flag, n.v, n.zero)
		}
	}
	if d := o.Connector.WriteTimeout; d < 0 || (d > 0 && d < 100*time.Millisecond) {
		return usageErr("--write-timeout %v: use at least 100ms, or 0 for the default (3s)", d)
	}
	if b := o.Connector.SendBufferBytes; b < -1 || (b > 0 && b < 4096) {
		return usageErr("--sndbuf %d: use at least 4096 bytes, 0 for the default (131072), or -1 for the kernel's autotuning", b)
	}
	if o.Connector.MaxPackageBytes > pomelo.MaxBodyLen {
		return usageErr("--max-package %d: a pomelo package body holds at most %d bytes", o.Connector.MaxPackageBytes, pomelo.MaxBodyLen)
	}
	if o.Connector.MaxPackageBytes > 0 && o.Connector.MaxPackageBytes < 256 {
		return usageErr("--max-package %d: too small for a handshake; use at least 256", o.Connector.MaxPackageBytes)
	}
	hb := o.Connector.Heartbeat
	if hb == 0 {
		hb = 3 * time.Second
	}
	if hb > 0 && hb%time.Second != 0 {
		return usageErr("--heartbeat %v: pomelo announces whole seconds; use 1s, 2s, ...", o.Connector.Heartbeat)
	}
	if t := o.Connector.HeartbeatTimeout; t < 0 || (t > 0 && hb > 0 && t <= hb) {
		return usageErr("--heartbeat-timeout %v: must be longer than the heartbeat interval (%v), or 0 for 2 x interval", t, hb)
	}
	if ip := net.ParseIP(o.Host); ip != nil && ip.IsUnspecified() && o.AdvertiseHost == "" {
		return usageErr("--host %s listens on every interface but queryEntry must hand out an address clients can dial: add --advertise-host <that address>", o.Host)
	}
	return nil
}
