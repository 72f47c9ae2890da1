# mailroom — see README.md. Every target needs only Go and the registries
# reachable from a build machine (the Go module proxy).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

BIN      := $(CURDIR)/.bin
MODULES  := gen/go platform fakes bench services/auth services/ingest services/classifier services/store gateway cmd/mailroom test/e2e test/chaos deploy
SERVICES := auth ingest classifier store
PKGS     := $(foreach m,$(MODULES),./$(m)/...)
GOTEST   ?= go test -shuffle=on -count=1

.PHONY: tools
tools: ## build buf, the protoc plugins, grpcurl and kustomize at the versions pinned in tools/go.mod
	cd tools && GOWORK=off GOBIN=$(BIN) go install tool

.PHONY: generate
generate: tools ## regenerate gen/go from proto/ (offline)
	PATH="$(BIN):$$PATH" $(BIN)/buf lint
	rm -rf gen/go/mailroom gen/go/openapi
	PATH="$(BIN):$$PATH" $(BIN)/buf generate
	cp tools/openapi.go.txt gen/go/openapi/openapi.go

.PHONY: check-generated
check-generated: tools ## fail when gen/go or the clients differ from what proto/ generates
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(BIN):$$PATH" $(BIN)/buf generate -o "$$tmp"; \
	cp tools/openapi.go.txt "$$tmp/gen/go/openapi/openapi.go"; \
	if ! diff -r "$$tmp/gen/go/mailroom" gen/go/mailroom >/dev/null || ! diff -r "$$tmp/gen/go/openapi" gen/go/openapi >/dev/null; then \
		diff -ru "$$tmp/gen/go" gen/go --exclude=go.mod --exclude=go.sum | head -50; \
		echo "gen/go is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi; echo "gen/go is up to date"
	BUF=$(BIN)/buf clients/generate.sh --check
	$(MAKE) --no-print-directory check-console

.PHONY: console
console: ## build the web console (console/, Vite + TypeScript) into gateway/console/dist, which is committed and embedded in the gateway
	cd console && npm ci --no-audit --no-fund && npm run build

.PHONY: check-console
check-console: ## fail when the committed gateway/console/dist differs from a fresh build of console/ (the build is deterministic)
	cd console && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npx tsc --noEmit
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd console && npx vite build --logLevel warn --outDir "$$tmp/dist" --emptyOutDir); \
	if ! diff -r "$$tmp/dist" gateway/console/dist >/dev/null; then \
		diff -ru "$$tmp/dist" gateway/console/dist | head -30; \
		echo "gateway/console/dist is stale: run 'make console' and commit the result" >&2; exit 1; \
	fi; echo "gateway/console/dist is up to date"

.PHONY: clients
clients: tools ## regenerate clients/python and clients/typescript from proto/ (Debian's protoc and python3-grpc-tools; npm ci)
	BUF=$(BIN)/buf clients/generate.sh

.PHONY: breaking
breaking: tools ## buf breaking against BASE (default main), for a branch's changes
	PATH="$(BIN):$$PATH" $(BIN)/buf breaking --against '.git#branch=$(or $(BASE),main)'

.PHONY: build
build: ## build every service binary, the gateway, the CLI and nats-server (for mailroom cluster) into .bin/
	mkdir -p $(BIN)
	for s in $(SERVICES); do go build -o $(BIN)/$$s ./services/$$s/cmd/$$s; done
	go build -o $(BIN)/gateway ./gateway/cmd/gateway
	go build -o $(BIN)/mailroom ./cmd/mailroom
	go build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

# Images: static binaries (CGO_ENABLED=0, -trimpath) on an empty base with a
# CA bundle and tzdata, user 65532, OCI labels; assembled without a container
# engine or a registry into the OCI layout .images/, then read back and checked.
IMAGE_SOURCE ?= https://github.com/mailroom/mailroom
IMAGE_NAMES  := auth,ingest,classifier,store,gateway,mailroom,nats-server
IMAGE_BINS   := ./services/auth/cmd/auth ./services/ingest/cmd/ingest ./services/classifier/cmd/classifier ./services/store/cmd/store ./gateway/cmd/gateway ./cmd/mailroom github.com/nats-io/nats-server/v2

.PHONY: images
images: ## build every image into the OCI layout .images/ and verify each (no Docker daemon; see deploy/cmd/images)
	mkdir -p $(BIN)/images
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $(BIN)/images/ $(IMAGE_BINS)
	go run ./deploy/cmd/images -bin $(BIN)/images -out .images -source $(IMAGE_SOURCE) -names $(IMAGE_NAMES) \
		-revision "$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
		-version "$$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
		-created "$$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
		-zoneinfo "$$(go env GOROOT)/lib/time/zoneinfo.zip"

.PHONY: deploy-check
deploy-check: ## render every overlay; strict API decoding, CRDs (KEDA, CloudNativePG, prometheus-operator), Pod Security restricted, policies
	go run ./deploy/cmd/deploy-check -pinned prod deploy/k8s/overlays/*/
	$(GOTEST) ./deploy/check/

.PHONY: alerts-test
alerts-test: ## promtool check and unit tests of the alert rules; the PrometheusRule and dashboard match them (needs promtool: apt-get install prometheus)
	promtool check rules deploy/k8s/components/monitoring/rules/mailroom.rules.yaml
	cd deploy/k8s/components/monitoring/rules && promtool test rules mailroom.rules.test.yaml
	$(GOTEST) ./deploy/monitoring/

.PHONY: lint
lint: tools ## buf lint, go vet, gofmt, kustomize build of every overlay
	PATH="$(BIN):$$PATH" $(BIN)/buf lint
	for o in deploy/k8s/overlays/*/; do $(BIN)/kustomize build "$$o" >/dev/null || exit 1; done
	go vet $(PKGS)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: test
test: check-generated lint ## everything CI checks: generated code, lint, and all tests
	$(GOTEST) -timeout 20m $(PKGS)

.PHONY: test-short
test-short: ## the tests alone, no generation or lint
	$(GOTEST) -timeout 20m $(PKGS)

.PHONY: chaos
chaos: ## the chaos suite, every scenario, on mailroom cluster with a Postgres of its own (~15 min; make test runs a third); MAILROOM_CHAOS=name,… picks some
	MAILROOM_CHAOS=$(or $(MAILROOM_CHAOS),all) $(GOTEST) -timeout 90m -v -run TestChaos ./test/chaos/

.PHONY: bench-cluster
bench-cluster: ## mailroom cluster with 1, then 2 replicas of every service: mails/s and completion ÷ the rate-limit floor against the fake OpenAI (minutes)
	go test -run '^$$' -bench BenchmarkCluster -benchtime 1x -timeout 90m ./test/chaos/

.PHONY: fuzz
fuzz: ## fuzz the MIME normalizer (FUZZTIME, default 1m); new crashers land in its testdata
	go test -run '^$$' -fuzz FuzzNormalize -fuzztime $(or $(FUZZTIME),1m) ./services/ingest/internal/mailparse

.PHONY: bench-store
bench-store: ## store benchmarks on both backends (~3 min; TEST_DATABASE_URL): write rate (go test -bench) and ListMessages p50/p99 over 1M messages
	scripts/bench-store.sh

.PHONY: bench-realtime
bench-realtime: ## real-time benchmark (~1 min): fake Gmail push → messages:watch client and webhook, p50/p95, lost/doubled across a gateway restart; bench/out/realtime/report.md
	cd test/e2e && MAILROOM_BENCH_REALTIME=1 go test -count=1 -run TestBenchRealtime -v -timeout 10m .

.PHONY: bench-classifier
bench-classifier: ## classifier benchmark (~11 min): 10,000 mails against the fake OpenAI, then issue 9's real-world runs; bench/out/classifier/report.md and charts (ARGS="-only latency" runs one)
	go run ./services/classifier/internal/benchmark/run -out bench/out/classifier $(ARGS)
	go run ./bench/cmd/charts bench/out/classifier

.PHONY: jaeger
jaeger: ## build Jaeger v2 all-in-one (OTLP in, in-memory storage, query API on :16686) into .bin/ from its Go module (JAEGER_VERSION, default v1.75.0)
	scripts/jaeger.sh $(BIN)

.PHONY: bench-cost
bench-cost: ## cost benchmark (~10 min): 20 users × 500 mails (bench/cost/workload.jsonl.gz) through the suite against the fake OpenAI, four configurations; bench/out/cost/report.md
	go run ./cmd/mailroom/costbench -out bench/out/cost

.PHONY: dev
dev: ## run the whole suite in one process (embedded NATS and SQLite under ./.mailroom/)
	go run ./cmd/mailroom dev

.PHONY: tidy
tidy: ## go mod tidy in every module
	for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
