# vitrine — `make run` sets up and starts the service on its embedded
# default; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/vitrine
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 1
# glibc's per-thread arenas fragment badly under libvips; two arenas keep
# peak memory down (see README, "Memory").
export MALLOC_ARENA_MAX ?= 2

.PHONY: all deps test-deps build run test test-short vet fuzz proto clean

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

build: deps
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/vitrine

run: build
	VITRINE_LOG_FORMAT=$${VITRINE_LOG_FORMAT:-console} ./$(BIN) serve

vet:
	$(GO) vet ./...

# Every test: unit tests, conformance suites, and end-to-end tests over HTTP.
test: test-deps vet
	$(GO) test -count=1 -timeout 40m ./...

# The fast tests only.
test-short: test-deps
	$(GO) test -short -count=1 ./...

# Fuzz the upload sniffing step (FUZZTIME=5m for a long run).
FUZZTIME ?= 30s
fuzz: test-deps
	$(GO) test ./media -run '^$$' -fuzz FuzzSniff -fuzztime $(FUZZTIME)

# Regenerate the protobuf messages that actors exchange across nodes
# (needs protoc and protoc-gen-go; the generated code is committed).
proto:
	protoc --go_out=. --go_opt=paths=source_relative actors/actorspb/product.proto

clean:
	rm -rf bin
