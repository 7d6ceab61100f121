//go:build tools

// Package tools pins the project's chosen dependencies in go.mod before every
// package that uses them exists, so parallel work never races on go.mod.
package tools

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/chromedp/chromedp"
	_ "github.com/gorilla/websocket"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/pflag"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/perf/benchmath"
	_ "gonum.org/v1/plot"
)
