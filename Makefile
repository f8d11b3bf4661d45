# vitrine — `make run` sets up and starts the service on its embedded
# default; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/vitrine
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 1
# The Go toolchain go.mod names (the standard library's security fixes); go
# fetches it once from the module proxy when the local go is older.
export GOTOOLCHAIN := $(shell sed -n 's/^toolchain //p' go.mod)
# glibc's per-thread arenas fragment badly under libvips; two arenas keep
# peak memory down (see README, "Memory").
export MALLOC_ARENA_MAX ?= 2

.PHONY: all deps test-deps build run test test-embedded test-short vet fuzz proto clean services-up services-down

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

# scripts/build says what it does: a first build compiles several hundred
# packages and takes minutes; it shows them as they go.
build: deps
	@VERSION=$(VERSION) GO=$(GO) scripts/build $(BIN)

# Development mode: anonymous writes, on 127.0.0.1 only (README, "Access").
run: build
	@echo "run: starting vitrine in development mode on http://127.0.0.1:8080 (the admin page: http://127.0.0.1:8080/admin/; Ctrl-C stops it)"
	VITRINE_ENV=$${VITRINE_ENV:-development} VITRINE_LOG_FORMAT=$${VITRINE_LOG_FORMAT:-console} ./$(BIN) serve

vet:
	$(GO) vet -tags 'integration chaos soak importscale faults kube' ./...

# Every test: unit tests, conformance suites, end-to-end tests over HTTP on
# the embedded default, and the same against real PostgreSQL, Redis, Kafka
# and S3 (started by scripts/services, stopped afterwards); then the API
# contract, held by Schemathesis against a live vitrine, and generated
# Python and TypeScript clients driven through it; then chaos and soak.
# scripts/gotest prints each package's result, failures and the figures the
# tests log; the whole -v output is kept in out/test.log.
test: test-deps vet validate-deploy vulncheck lint
	GO=$(GO) scripts/with-services scripts/gotest -count=1 -p 1 -tags integration -timeout 60m ./...
	$(MAKE) test-contract test-clients test-chaos test-faults test-soak test-import
	$(MAKE) test-kube KUBE_RUN='$(KUBE_CI_RUN)'
	$(MAKE) test-deploy

# Chaos (cmd/vitrine/chaos_test.go, a few minutes, 10 at most): servers of
# its own (own state directory and ports: the shared ones are never
# restarted), two API nodes and two worker processes; 1,000 uploads and
# product writes through two SIGKILLs of workers and restarts of Kafka,
# Redis and PostgreSQL at random times. Prints its seed and figures;
# VITRINE_CHAOS_SEED=N replays a run.
.PHONY: test-chaos test-soak
test-chaos: test-deps
	$(GO) test -count=1 -tags 'integration chaos' -run '^TestChaos$$' -timeout 15m -v ./cmd/vitrine

# Faults that lose data (a few minutes), each on servers of its own:
# Kafka's (cmd/vitrine/kafkafaults_test.go: three brokers, a partition
# leader SIGKILLed, a broker's disk wiped, messages expired by retention);
# network partitions (partition_test.go: a fault proxy, toxiproxy
# in-process, between a node and Redis or PostgreSQL that resets or
# silently drops the link); a partition between nodes (netsplit_test.go,
# root and ip: three nodes in network namespaces of their own, one cut
# from the other two); product histories checked by Porcupine
# (register_test.go). Each checks what README's "Delivery guarantees",
# "Degraded dependencies" and "Running a cluster" state.
.PHONY: test-faults
test-faults: test-deps
	$(GO) test -count=1 -tags 'integration faults' -run '^(TestFaults|TestPartition|TestRegister)' -timeout 30m -v ./cmd/vitrine

# Soak (cmd/vitrine/soak_test.go, about two minutes): 3,000 uploads through
# one worker process on the real servers; its RSS, goroutines and file
# descriptors after the last against after the first 300.
test-soak: test-deps
	scripts/with-services $(GO) test -count=1 -tags 'integration soak' -run '^TestSoak$$' -timeout 20m -v ./cmd/vitrine

# Import at scale (cmd/vitrine/importscale_test.go, a few minutes): 10,000
# products with an image URL each into two processes on the real servers,
# the one running the import SIGKILLed a third of the way; every row
# applied once. Prints duration, rows/s, peak RSS and what the kill cost.
.PHONY: test-import
test-import: test-deps
	scripts/with-services $(GO) test -count=1 -tags 'integration importscale' -run '^TestImportScale$$' -timeout 30m -v ./cmd/vitrine

# Known vulnerabilities and gosec, offline (scripts/vulncheck, about a
# minute once its pinned tools are built): fails on any vulnerability
# vitrine's code reaches in a database built from a pinned
# golang.org/x/vulndb, and on any gosec finding not justified in place.
.PHONY: vulncheck
vulncheck: test-deps
	scripts/vulncheck

# golangci-lint, pinned (scripts/lint, up to two minutes once it is built,
# seconds when little changed; building it takes two more): the linters of .golangci.yml over every
# package and the test files of every build tag; fails on any finding not
# fixed or justified on its line as //nolint:<linter> // <reason>.
.PHONY: lint
lint: test-deps
	scripts/lint

# The OpenAPI document against a live vitrine (scripts/schemathesis; the
# report lands in out/schemathesis/).
.PHONY: test-contract
test-contract: test-deps
	scripts/schemathesis

# Clients generated from the document a live vitrine serves (scripts/clients,
# under a minute): Python by openapi-python-client, TypeScript by
# openapi-typescript with openapi-fetch, pinned and cached; one flow through
# each, unedited, with an API key (clients/python/flow.py, clients/ts/flow.ts).
# The generated code lands in out/clients/.
.PHONY: test-clients
test-clients: test-deps
	scripts/clients

# The Kubernetes manifests against the API schemas (kubernetes-validate,
# pinned, in a cached virtualenv) and docker-compose.yml's structure.
.PHONY: validate-deploy
validate-deploy:
	scripts/validate-deploy

# Without the real servers: the embedded default only.
test-embedded: test-deps
	$(GO) test -count=1 -timeout 40m ./...

# The fast tests only.
test-short: test-deps
	$(GO) test -short -count=1 ./...

# A cluster of CLUSTER_NODES nodes on 127.0.0.1 on the real servers, with
# etcd membership (scripts/cluster): prints `node N pid PID url URL` per
# node. `make cluster-down` stops the nodes and the servers it started.
CLUSTER_NODES ?= 3
.PHONY: cluster cluster-down
cluster: build
	@scripts/cluster up $(CLUSTER_NODES)
cluster-down:
	@scripts/cluster down

# Start or stop the real servers by hand: eval "$$(scripts/services up)" && make run
services-up:
	@scripts/services up
services-down:
	@scripts/services down

# Fuzz every target for FUZZTIME each (FUZZTIME=5m for a long run): what
# a client sends before anything else sees it, and the upload sniffing.
FUZZTIME ?= 30s
FUZZ_TARGETS := media:FuzzSniff catalog:FuzzParseProductInput catalog:FuzzMergePatch \
	transport/rest:FuzzCursor transport/rest:FuzzMultipart transport/rest:FuzzIdempotencyKey transport/rest:FuzzAuthorization
fuzz: test-deps
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test ./$${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# Regenerate the protobuf messages that actors exchange across nodes
# (needs protoc and protoc-gen-go; the generated code is committed).
proto:
	protoc --go_out=. --go_opt=paths=source_relative actors/actorspb/product.proto

clean:
	rm -rf bin

# Load test (bench/README.md): every scenario with short phases and small
# counts, about a minute on a 2-core machine, on the embedded default (or on
# the real backends when VITRINE_POSTGRES_URL… are set); prints the ratios to
# the baselines and writes bench/out/report.json and report.html (partial, and
# a non-zero exit, when a scenario fails or Ctrl-C stops it). bench-full is
# the long run (-full: 4 s phases, 10,000 products, a 19.6 MP photo, about
# five minutes). BENCH_DURATION=3s sets each phase; BENCH_FLAGS passes more
# flags, which override either profile.
.PHONY: bench bench-full bench-cluster
bench: test-deps
	$(GO) run ./bench $(BENCH_FLAGS)

bench-full: test-deps
	$(GO) run ./bench -full $(BENCH_FLAGS)

# The cluster mode (bench/README.md): the scenarios against 1, then
# CLUSTER_NODES nodes started like `make cluster`, round-robin; writes
# bench/out/cluster.json. Same as make bench BENCH_FLAGS='-cluster N'.
bench-cluster: test-deps build
	$(GO) run ./bench -cluster $(CLUSTER_NODES) $(BENCH_FLAGS)

# The container image (scripts/image): deploy/Dockerfile built as
# vitrine:local on the engine DOCKER_HOST names, else on vitrine's own
# (scripts/dockerd: Debian's docker.io, no iptables, layers kept in
# /var/lib/vitrine-docker). Where no registry answers, its FROM images are
# built locally first (debootstrap, the host's Go). Prints the image's size.
.PHONY: image test-deploy
image:
	@scripts/image

# vitrine as operators run it (scripts/test-deploy, about 2 minutes warm,
# about 16 cold): the image alone (read-only, non-root, healthy, one product
# and one upload), then docker-compose.yml with every backend (stand-ins
# from Debian packages where no registry answers: deploy/compose.local.yml),
# the walk-through through the load balancer, --scale api=3 --scale
# worker=2, an api and a worker killed mid-load (no acknowledged write lost,
# every accepted upload ready), down -v, the engine stopped; figures printed.
test-deploy:
	@scripts/test-deploy

# Kubernetes (cmd/vitrine/kube_integration_test.go, a few minutes; root): a
# kube-apiserver built from k8s.io/kubernetes (scripts/services up kube:
# once about 10 minutes to build) on an etcd of its own, on 127.0.0.1 only,
# stopped afterwards. deploy/k8s applied (server-side dry run, then for
# real); three vitrine processes on protoactor's Kubernetes provider, each
# as a pod (the test plays the kubelet), with the ServiceAccount's token and
# deploy/k8s's RBAC: members, a lost pod, a new pod, a graceful leave; the
# Role without each of its verbs in turn.
# make test runs all three (KUBE_CI_RUN). TestKubeCluster once read back a
# product whose DELETE had been answered 204 after a pod joined: a grain
# kept a product the store said was gone (actors/product.go, stored;
# TestGrainForgetsAProductAnotherGrainDeleted).
KUBE_RUN ?= ^TestKube
KUBE_CI_RUN := ^TestKube(Manifests|RBAC|Cluster)$$
.PHONY: test-kube
test-kube: test-deps
	scripts/with-services scripts/with-kube $(GO) test -count=1 -tags 'integration kube' -run '$(KUBE_RUN)' -timeout 20m -v ./cmd/vitrine
