# Spacecast: every target covers every module of the go.work workspace.
MODULE_DIRS := $(shell go list -m -f '{{.Dir}}')
PKGS := $(addsuffix /...,$(MODULE_DIRS))
TEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: test lint build fuzz dev bench tidy

## test: every module's tests (real Redis/PostgreSQL when SPACECAST_TEST_REDIS_URL /
## SPACECAST_TEST_POSTGRES_URL are set, embedded servers otherwise; Kafka is always embedded)
test:
	go test $(TEST_FLAGS) $(PKGS)

## lint: go vet on every module
lint:
	go vet $(PKGS)

## build: every binary into bin/
build:
	mkdir -p bin
	go build -o bin/ $(PKGS)

## fuzz: each fuzz target for a few seconds (FUZZTIME to change)
FUZZTIME ?= 5s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' $(MODULE_DIRS) || true); do \
	  dir=$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$dir $$t ($(FUZZTIME))"; (cd $$dir && go test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) .); \
	  done; \
	done

## dev: the all-in-one dev mode
dev:
	go run ./cmd/spacecast dev

## bench: the four comparisons with their anchors, each printing both sides and the ratio
## (BENCH_QUICK=1: short phases, for a smoke run). bench-api: REST against bench/anchors'
## echoapi; bench-webhooks: webhooks-bench burst against bench/anchors' rawhook; bench-ingest:
## RTMP ingest against nginx-rtmp (bench/ingest/run.sh installs Debian's libnginx-mod-rtmp);
## bench-sfu: sfu-load's subscriber steps against a minimal pion fan-out (sfu-load serve-anchor).
ifeq ($(BENCH_QUICK),1)
BENCH_API_FLAGS ?= --duration 2s --pairs 1
BENCH_SFU_FLAGS ?= -n 10 -duration 2s -compare-anchor 1
else
BENCH_API_FLAGS ?= --duration 10s --pairs 3
BENCH_SFU_FLAGS ?= -n 50,150 -duration 10s -compare-anchor 2
endif
export BENCH_QUICK

.PHONY: bench-api bench-webhooks bench-ingest bench-sfu
bench: bench-api bench-webhooks bench-ingest bench-sfu

bench-api:
	mkdir -p bin
	go build -o bin/ ./cmd/spacecast ./bench/anchors/cmd/echoapi
	bin/spacecast bench api --anchor bin/echoapi --concurrencies 16,32 $(BENCH_API_FLAGS)

bench-webhooks:
	bench/webhooks/run.sh

bench-ingest:
	bench/ingest/run.sh

bench-sfu:
	mkdir -p bin
	go build -o bin/ ./services/sfu/cmd/sfu-load
	bin/sfu-load -bitrate 1000000 $(BENCH_SFU_FLAGS)
