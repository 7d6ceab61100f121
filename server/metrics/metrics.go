// Package metrics owns the reference server's Prometheus metrics: one Set per
// server process, registered on its own registry so several servers (tests,
// single-process topologies) never collide on a global one.
//
// Hot-path counters are plain atomics added once per written batch, not per
// package; Prometheus reads them through CounterFuncs at scrape time.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is every metric of one server process. The zero value is not usable;
// call New. A nil *Set is valid and records nothing.
type Set struct {
	Registry *prometheus.Registry

	Connections      atomic.Int64 // open websocket sessions
	MessagesIn       atomic.Uint64
	PackagesOut      atomic.Uint64 // packages written to sockets (pushes, responses, heartbeats)
	FramesOut        atomic.Uint64 // websocket frames written
	PushesDelivered  atomic.Uint64 // push packages written to sockets
	PushesDropped    atomic.Uint64 // pushes discarded because a session was closing or overflowed
	SlowConsumers    atomic.Uint64 // sessions closed because their queue overflowed
	MalformedClosed  atomic.Uint64 // sessions closed for a protocol violation
	HeartbeatTimeout atomic.Uint64 // sessions closed for silence

	requestDuration *prometheus.HistogramVec
	errors          *prometheus.CounterVec
}

// New creates the metrics of the server with the given id. rooms and members,
// when not nil, are read at scrape time.
func New(serverID string, rooms, members func() float64) *Set {
	s := &Set{Registry: prometheus.NewRegistry()}
	labels := prometheus.Labels{"server": serverID}
	s.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "chatbench_request_duration_seconds", Help: "Time to handle a request, by route.",
		ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	}, []string{"route"})
	s.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chatbench_request_errors_total", Help: "Error responses, by pomelo code.", ConstLabels: labels,
	}, []string{"code"})
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	s.Registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.requestDuration, s.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatbench_connections", Help: "Open websocket sessions.", ConstLabels: labels},
			func() float64 { return float64(s.Connections.Load()) }),
		counter("chatbench_messages_in_total", "Requests and notifies received.", &s.MessagesIn),
		counter("chatbench_packages_out_total", "Packages written to sockets.", &s.PackagesOut),
		counter("chatbench_frames_out_total", "Websocket frames written (packages are coalesced).", &s.FramesOut),
		counter("chatbench_pushes_delivered_total", "Push packages written to sockets.", &s.PushesDelivered),
		counter("chatbench_pushes_dropped_total", "Pushes discarded for closing or overflowing sessions.", &s.PushesDropped),
		counter("chatbench_slow_consumers_total", "Sessions closed because their outbound queue overflowed.", &s.SlowConsumers),
		counter("chatbench_malformed_closed_total", "Sessions closed for a protocol violation.", &s.MalformedClosed),
		counter("chatbench_heartbeat_timeouts_total", "Sessions closed after heartbeat silence.", &s.HeartbeatTimeout),
	)
	if rooms != nil {
		s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatbench_rooms", Help: "Rooms that exist.", ConstLabels: labels}, rooms))
	}
	if members != nil {
		s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatbench_room_members", Help: "Members over all rooms.", ConstLabels: labels}, members))
	}
	return s
}

// ObserveRequest records one handled request; code 0 means success.
func (s *Set) ObserveRequest(route string, d time.Duration, code int) {
	if s == nil {
		return
	}
	s.requestDuration.WithLabelValues(route).Observe(d.Seconds())
	if code != 0 {
		s.errors.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

// Handler serves the metrics in the Prometheus text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
}
