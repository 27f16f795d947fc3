SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

GO        ?= go
BIN       ?= ratelimit_exporter
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell id -un 2>/dev/null)@$(shell hostname 2>/dev/null)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS   := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all build test vet fuzz bench demo clean prometheus3

all: test build

# The one place the build flags are written: the Dockerfile runs it too.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# gofmt walks the tree itself: no git needed, and never stdin (gofmt -l with
# no file arguments would read it and wait). A gofmt error fails too.
vet:
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)" && test -z "$$unformatted" || { echo "gofmt needed:"; echo "$$unformatted"; exit 1; }

E2E := ^(TestEndToEndWithPrometheus|TestPrometheusRules)$$

# The proxy's memory tests measure the heap, which the race detector
# inflates (they allow it twice as much there): they also run without it.
MEMORY := ^(TestAnnouncedBodiesCostNothing|TestLargeHeadersAreBounded|TestHTTP2StreamsAreBounded)$$

# The test command: what CI runs. The end-to-end tests run verbosely so that
# their figures (dashboard queries run and answered, active alerts) show.
test: vet
	$(GO) test -race -count=1 -skip '$(E2E)' ./...
	$(GO) test -count=1 -run '$(MEMORY)' ./proxy
	$(GO) test -race -count=1 -run '$(E2E)' -v ./e2e | grep -v '^=== RUN'
	$(MAKE) fuzz

# Each parser of outside input, fuzzed from its committed seed corpus
# (testdata/fuzz/); a finding fails and is written there. Budgets are counts
# of executions, about 20s each on a 2-CPU machine: a time budget can fail
# with "context deadline exceeded" and no finding on Go 1.26 (a race in the
# fuzz coordinator, golang/go#75804, fixed in Go 1.27).
FUZZ_HEADERS ?= 100000x
FUZZ_CONFIG  ?= 40000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeaders$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_HEADERS)) ./ratelimit
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_CONFIG)) ./config

# Figures for BENCHMARKS.md: Go benchmarks, then the built binary against the
# simulator and Debian's prometheus-blackbox-exporter.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ratelimit ./server ./prober ./history
	@command -v prometheus-blackbox-exporter >/dev/null || { echo "bench: apt-get install prometheus-blackbox-exporter"; exit 1; }
	$(GO) run ./bench

# Prometheus 3 for the end-to-end tests, which find it in the cache folder
# this prints (or at RLE_PROMETHEUS3); built once per version.
prometheus3:
	.ci/prometheus3

demo:
	$(GO) run . --demo

clean:
	rm -f $(BIN)
