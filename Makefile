# resetq: `make help` lists the targets. CI runs `bash .ci/run`, which calls `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/resetq
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME ?= 10s
# make test fuzzes by count, not time: Go 1.26's fuzzer can fail a run with a
# bare "context deadline exceeded" when -fuzztime ends mid-call
# (go.dev/issue/75804, fixed in Go 1.27). About 10 s each here.
FUZZ_PARSE ?= $(FUZZTIME)
FUZZ_HANDLE ?= $(FUZZTIME)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/resetq
	$(GO) build -o $(BIN) ./cmd/resetq

.PHONY: tools
tools: ## install what the tests need (moto, AWS CLI, prometheus/promtool; checks kubectl, cfn-lint)
	@bash .ci/install-tools

.PHONY: demo
demo: build tools ## run a whole campaign on local emulators (no AWS account) and print a summary
	$(GO) run ./internal/demo -resetq $(BIN)

.PHONY: test
test: tools ## every test: unit, worker, adapters against moto, end to end (the built binary), a short fuzz
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^(TestSimulated.*|TestWorld.*)$$' ./ratelimit
	$(MAKE) --no-print-directory fuzz FUZZ_PARSE=100000x FUZZ_HANDLE=3000x

BENCH_JSON ?= bench-results.json

.PHONY: bench
bench: ## benchmarks with figures for docs/benchmarks.md: the harness against the baselines (full profile, scenarios 1-8, about 72 min: 15 for 1-4, 30 for 5, pacing in the world, 10 for 6, the ledger at the quota, 5 for 7, pools in many account-Regions, 12 for 8, nine 11-minute campaigns at once; writes bench-results.json), then the enqueue benchmarks (installs fauxqs from npm into .cache/ on first use) and the ledger's cost per job (about 2 min, moto's rows skipped without moto_server)
	$(GO) run ./internal/bench/harness -profile full -json $(BENCH_JSON)
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./internal/bench
	$(GO) test -run '^$$' -bench . -benchmem ./enqueue
	$(GO) test -run '^$$' -bench '^BenchmarkLedger' -benchmem -timeout 20m ./ledger
	$(GO) test -count=1 -run '^(TestSimulatedQuota|TestWorld.*)$$' -v ./ratelimit | grep -E 'rate|frontier|ok'

.PHONY: bench-quick
bench-quick: ## the benchmark harness, quick profile (about two minutes, a smoke test fit for CI; scenario 6 runs 60 jobs without and with the ledger, 7 60 jobs in each of 4 account-Regions twice, 8 its nine campaigns for 20 s at once): writes bench-quick.json
	$(GO) run ./internal/bench/harness -profile quick -json bench-quick.json

CHAOS_REPORT ?= docs/reliability.json

.PHONY: chaos
chaos: tools ## the fault suite, full profile (SIGKILLs, faults on SQS, Cognito and the ledger, SQS and ledger outages): writes docs/reliability.json, prints the figures
	$(GO) test -race -c -o bin/chaos.test ./internal/chaos
	cd internal/chaos && RESETQ_CHAOS=full RESETQ_CHAOS_REPORT=$(CURDIR)/$(CHAOS_REPORT) $(CURDIR)/bin/chaos.test -test.count=1 -test.timeout 40m

.PHONY: fuzz
fuzz: ## fuzz the job decoder and the whole message path, FUZZTIME each (make test: a count, about 10 s each; longer: FUZZTIME=10m)
	$(GO) test -run '^$$' -fuzz '^FuzzParseJob$$' -fuzztime $(FUZZ_PARSE) -fuzzminimizetime 1s ./job
	$(GO) test -run '^$$' -fuzz '^FuzzHandleMessage$$' -fuzztime $(FUZZ_HANDLE) -fuzzminimizetime 1s ./worker

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, and no testing linked into resetq, the demo or the bench harness
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@out=$$($(GO) list -deps ./cmd/resetq ./internal/demo ./internal/bench/harness | grep -x testing); if [ -n "$$out" ]; then echo "a binary links testing: keep test helpers in test-only packages"; exit 1; fi
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

.PHONY: generate
generate: ## regenerate deploy/kubernetes/base/prometheusrule.yaml from deploy/prometheus/rules.yml
	$(GO) run ./internal/tools/promrule

.PHONY: image
image: ## build the container image resetq:dev (needs a Docker engine)
	docker build -t resetq:dev .

.PHONY: clean
clean: ## remove build output
	rm -rf bin
