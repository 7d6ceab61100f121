# chatbench Makefile: build, test, serve and measure; each target is described above it.

GO ?= go

# test: everything CI runs. vet, then every package with the race detector;
# the gate's package last and alone: its end-to-end test measures runs of
# the server, which the other packages' tests must not share the machine with.
.PHONY: test vet serve
test: vet
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/bench/gate$$')
	$(GO) test -race -count=1 -timeout 15m ./bench/gate

# vet also checks the macOS build (load tests often start on a laptop):
# epoll, timerfd, SIOCINQ, the parent-death signal and nice sit behind build
# tags with portable fallbacks.
vet:
	$(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# serve: the single-process reference server on pomelo's demo ports
# (gate ws 3014, connector ws 3050, HTTP 3001). ARGS=... adds serve flags.
serve: build
	$(BIN) serve $(ARGS)

# pomelo: stock pomelo 2.2.7 (peers/pomelo, run by node) in the foreground on
# the stock demo's ports: gate ws 3014, connectors 3050.., the chat page on
# HTTP 3001; CONNECTORS=3 SHARDS=3 by default. The first run installs pomelo
# by name from the npm registry into peers/pomelo/node_modules (not tracked);
# needs node and npm (Debian: apt-get install -y nodejs npm). Ctrl-C stops
# every node process. `make bench TOPOLOGY=pomelo` runs a scenario against it.
.PHONY: pomelo
pomelo: build
	$(BIN) serve --topology pomelo --connectors $(or $(CONNECTORS),3) --shards $(or $(SHARDS),3) $(ARGS)

# smoke: the browser smoke test only, against both topologies: single
# and split (gate, 2 connectors, 2 chat shards as processes of the chatbench binary,
# which the test builds). Needs Debian's chromium (apt-get install -y chromium);
# skips without it, fails without it under CI=true. Screenshots land in
# results/smoke/{single,split}-*.png.
.PHONY: smoke
smoke:
	$(GO) test -count=1 -run 'TestSmoke' -v ./web/

# build, bench. `make build` puts the binary in bin/chatbench.
# `make bench SCENARIO=broadcast-storm [DURATION=10s CLIENTS=2000 ROOMS=20 RATE=0.5
#   TOPOLOGY=split|pomelo CONNECTORS=3 SHARDS=3 TARGET=host:port OUT=results
#   WORKERS=3 (split the driver over 3 local worker processes; NATS=URL: wait for
#   that many `chatbench worker --nats URL` instead)]`
# builds, starts the reference server (unless TARGET is set), runs the scenario,
# stops the server, prints the summary and writes results/<scenario>-<time>/.
BIN ?= bin/chatbench
SCENARIO ?= broadcast-storm

# COMMIT is stamped into the binary (summary.json "commit"): the short HEAD of
# this checkout, -dirty when tracked files differ from it; empty outside git
# (the binary then falls back to Go's vcs.revision, else "unknown").
COMMIT ?= $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
	{ git diff --quiet HEAD -- 2>/dev/null || c=$$c-dirty; echo $$c; })

.PHONY: build
build:
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o $(BIN) ./cmd/chatbench

BENCH_FLAGS = --scenario $(SCENARIO) \
	$(if $(DURATION),--duration $(DURATION)) \
	$(if $(CLIENTS),--clients $(CLIENTS)) \
	$(if $(ROOMS),--rooms $(ROOMS)) \
	$(if $(RATE),--rate $(RATE)) \
	$(if $(SEED),--seed $(SEED)) \
	$(if $(TARGET),--target $(TARGET)) \
	$(if $(TOPOLOGY),--topology $(TOPOLOGY)) \
	$(if $(CONNECTORS),--connectors $(CONNECTORS)) \
	$(if $(SHARDS),--shards $(SHARDS)) \
	$(if $(SOURCE_ADDRS),--source-addrs $(SOURCE_ADDRS)) \
	$(if $(WORKERS),--workers $(WORKERS)) \
	$(if $(NATS),--nats $(NATS)) \
	$(if $(OUT),--out $(OUT)) \
	$(if $(FAIL_ON_DRIVER_BOUND),--fail-on-driver-bound)

.PHONY: bench
bench: build
	$(BIN) bench $(BENCH_FLAGS)

# perf, perf-bench. `make perf` runs the Go benchmarks (codec, chat push encode,
# room broadcast, storm with and without coalescing, driver receive path;
# allocs/op) and then `chatbench perf`: the target table (measured, ratio,
# target, met) for the storm vs the calibrated ceiling, split 2x2 vs single,
# p99 at 100k deliveries/s as a ratio to the bare calibration server measured
# interleaved (<= 1.1x), p99 <= 25 ms at 0.9 of the highest rate at which the
# bare server holds 25 ms (found by a short search), driver memory per idle
# client, 19,000 clients in one process, driver-bound on the shipped scenarios.
# Its exit status follows the table: 1 when any row is not met. About 15
# minutes; PERF_ONLY=storm,latency,search picks targets, RECALIBRATE=1
# measures the ceilings again, LATENCY_RUNS=N (default 3) runs of ours and of
# the bare server at 100k/s. Not part of `make test`.
PERF_BENCHTIME ?= 0.5s
.PHONY: perf perf-bench
perf: build perf-bench
	$(BIN) perf $(if $(PERF_ONLY),--only $(PERF_ONLY)) $(if $(RECALIBRATE),--recalibrate) $(if $(LATENCY_RUNS),--latency-runs $(LATENCY_RUNS)) $(if $(OUT),--out $(OUT))

# gate: the A/B performance regression gate. `make gate` builds HEAD and its
# parent in temporary worktrees and runs them interleaved on the short gate
# scenario (GATE_RUNS each, about 4 s a run; while inconclusive, more up to
# GATE_MAX_RUNS, default twice GATE_RUNS), then compares the server's CPU
# per delivery (all, and user), deliveries/s and delivery p50/p99 (Mann-Whitney U and the
# interval of the change it inverts). Exit 0 pass, 1 regression, 3
# inconclusive.
# GATE_BASELINE=REF GATE_CANDIDATE=REF GATE_RUNS=N GATE_MAX_RUNS=N OUT=DIR.
GATE_BASELINE ?= HEAD~1
GATE_CANDIDATE ?= HEAD
GATE_RUNS ?= 8
.PHONY: gate
gate: build
	$(BIN) gate --baseline $(GATE_BASELINE) --candidate $(GATE_CANDIDATE) --scenario gate --runs $(GATE_RUNS) $(if $(GATE_MAX_RUNS),--max-runs $(GATE_MAX_RUNS)) $(if $(OUT),--out $(OUT))

perf-bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(PERF_BENCHTIME) ./pomelo/ ./server/chat/ ./server/room/ ./bench/driver/ ./bench/metrics/ ./bench/pace/
	$(GO) test -run '^$$' -bench 'RoomBroadcast|Storm' -benchmem -benchtime=$(PERF_BENCHTIME) ./server/
	$(GO) test -run '^$$' -bench LoopbackFloor -benchtime=$(PERF_BENCHTIME) ./internal/wsout/

# soak: churn clients (enter, chat, hop, leave, reconnect) against a server it
# starts, reading every server process's /metrics (resident memory,
# goroutines, open fds) before, during and after the load; exits 99 when a
# gauge does not come back within its margin of the baseline or grows
# steadily under the load. Writes results/soak-<time>/ (samples.csv,
# soak.png, soak.txt).
# `make soak [DURATION=10m TOPOLOGY=split CONNECTORS=2 SHARDS=2 CLIENTS=200 SOAK_ARGS=...]`
.PHONY: soak
soak: build
	$(BIN) soak --duration $(or $(DURATION),10m) $(if $(TOPOLOGY),--topology $(TOPOLOGY)) \
	  $(if $(CONNECTORS),--connectors $(CONNECTORS)) $(if $(SHARDS),--shards $(SHARDS)) \
	  $(if $(CLIENTS),--clients $(CLIENTS)) $(if $(OUT),--out $(OUT)) $(SOAK_ARGS)

# sweep, compare (reports). `make sweep [SCENARIO=broadcast-storm CONNECTORS=1,2
#   SHARDS=1,2 REPEAT=2 POMELO=1 DURATION=... CLIENTS=... OUT=results]` runs the
# scenario on the split topology at every connectors x shards size plus the
# single-process baseline (and stock pomelo with POMELO=1), REPEAT rounds
# interleaved, and writes results/sweep-<time>/ (sweep.json, scaling plots,
# report.html; docs/results.md). About 4 minutes with the defaults here.
# `make compare SCENARIO=... [CONNECTORS=2 SHARDS=2 REPEAT=3 POMELO=0]` runs
# single against split and stock pomelo (where node and npm are installed)
# side by side into results/compare-<time>/.
REPEAT ?= 2
SWEEP_FLAGS = --scenario $(SCENARIO) \
	$(if $(CONNECTORS),--connectors $(CONNECTORS)) \
	$(if $(SHARDS),--shards $(SHARDS)) \
	$(if $(filter-out 0,$(POMELO)),--pomelo) \
	$(if $(DURATION),--duration $(DURATION)) \
	$(if $(CLIENTS),--clients $(CLIENTS)) \
	$(if $(ROOMS),--rooms $(ROOMS)) \
	$(if $(RATE),--rate $(RATE)) \
	$(if $(SEED),--seed $(SEED)) \
	$(if $(OUT),--out $(OUT))

.PHONY: sweep compare
sweep: build
	$(BIN) sweep $(SWEEP_FLAGS) --repeat $(REPEAT)

# compare includes stock pomelo where node and npm are installed (POMELO=0: never).
POMELO_AVAILABLE := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo 1)
compare: build
	$(BIN) sweep --compare $(SWEEP_FLAGS:--pomelo=) $(if $(filter 0,$(POMELO)),,$(if $(or $(POMELO),$(POMELO_AVAILABLE)),--pomelo)) \
	  --repeat $(if $(filter command line,$(origin REPEAT)),$(REPEAT),3)
