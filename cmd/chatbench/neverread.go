package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chatbench/chatbench/bench/soak"
)

func init() {
	register("neverread", "hold many clients that never read in busy rooms of a running server; report its RSS and the machine's TCP memory", runNeverRead)
}

func runNeverRead(ctx context.Context, args []string) error {
	fs := newFlags("neverread")
	var o soak.NeverReadOptions
	fs.StringVar(&o.Gate, "target", "", "gate host:port of the server (required)")
	fs.StringVar(&o.Metrics, "metrics", "", "/metrics URL of the server process holding the sessions (required)")
	fs.IntVar(&o.Clients, "clients", 1000, "clients that never read")
	fs.IntVar(&o.Rooms, "rooms", 10, "rooms they sit in; a feeder client chats into each")
	fs.DurationVar(&o.FeedEvery, "feed-every", 20*time.Millisecond, "interval between two messages of a room's feeder")
	fs.IntVar(&o.FeedBytes, "feed-bytes", 2000, "content size of the feeders' messages")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to hold them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Gate == "" || o.Metrics == "" {
		return usageErr("--target and --metrics are required (a running server: chatbench serve prints both in its READY line)")
	}
	if err := raiseFileLimit(o.Clients + o.Rooms); err != nil {
		return err
	}
	o.Progress = os.Stderr
	res, err := soak.NeverRead(ctx, o)
	if err != nil {
		return err
	}
	rss, sock := res.Peak()
	b := res.Baseline
	fmt.Printf("never-readers: %d entered, %d feeder messages\n", res.Entered, res.Fed)
	fmt.Printf("server RSS: %.0f MiB before, %.0f MiB peak (+%.0f MiB)\n", b.RSS/(1<<20), rss/(1<<20), (rss-b.RSS)/(1<<20))
	fmt.Printf("TCP socket memory (machine): %.0f MiB before, %.0f MiB peak (+%.0f MiB)\n", b.SockMem/(1<<20), sock/(1<<20), (sock-b.SockMem)/(1<<20))
	if n := len(res.Samples); n > 0 {
		last := res.Samples[n-1]
		fmt.Printf("kicked as slow consumers by the end: %.0f; connections left: %.0f\n", last.Kicked-b.Kicked, last.Connections)
	}
	return nil
}
