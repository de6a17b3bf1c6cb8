# payments-api: build, test and run. `make help` lists the targets.

# Tool versions, pinned here so that CI and every developer install the same.
STRIPE_MOCK_VERSION := v0.203.0
HELM_VERSION        := v3.19.0
STATICCHECK_VERSION := v0.8.2

BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The exact flags the Dockerfile builds with: a static, reproducible binary.
BUILD_FLAGS := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

export STRIPE_MOCK_BIN := $(BIN)/stripe-mock
export HELM_BIN        := $(BIN)/helm

.PHONY: help build test test-go test-chart fuzz lint bench bench-load sandbox tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/payments-api exactly as the Dockerfile does
	CGO_ENABLED=0 go build $(BUILD_FLAGS) -o $(BIN)/payments-api ./cmd/payments-api

test: lint test-go test-chart fuzz ## run every test: lint, Go tests with -race, chart tests, short fuzzing

test-go: tools
	go test -race -count=1 ./...

test-chart: tools
	cd charts/test && go test -count=1 ./...

FUZZTIME ?= 10s
fuzz: tools ## run each fuzz target briefly (FUZZTIME, default 10s)
	go test -run '^$$' -fuzz '^FuzzMiddleware$$' -fuzztime $(FUZZTIME) ./internal/auth
	go test -run '^$$' -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./internal/webhook
	go test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./internal/webhook
	go test -run '^$$' -fuzz '^FuzzValidJSON$$' -fuzztime $(FUZZTIME) ./internal/webhook

lint: ## go.mod tidy, gofmt, go vet and staticcheck, for both Go modules
	go mod tidy -diff
	cd charts/test && go mod tidy -diff
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	go vet ./...
	cd charts/test && go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd charts/test && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: ## run the benchmarks
	go test -run '^$$' -bench . -benchmem ./...

# A measurement, not a test: the binary built as the Dockerfile builds it, under
# load from this machine's loopback only, about a minute. LOADBENCH_FLAGS passes
# flags, e.g. LOADBENCH_FLAGS='-run webhook -duration 10s'.
bench-load: build ## measure the real binary under load: req/s, p50/p99, peak RSS per scenario
	go build -o $(BIN)/loadbench ./cmd/loadbench
	$(BIN)/loadbench -service $(BIN)/payments-api $(LOADBENCH_FLAGS)

# Built, not `go run`: go run exits 1 on Ctrl-C even when the program stops cleanly.
sandbox: $(BIN)/stripe-mock ## run the whole payment flow locally (stripe-mock, Clerk and Next.js stand-ins)
	go build -o $(BIN)/sandbox ./cmd/sandbox && $(BIN)/sandbox $(SANDBOX_FLAGS)

tools: $(BIN)/stripe-mock $(BIN)/helm ## install the pinned test tools into bin/

$(BIN)/stripe-mock:
	GOBIN=$(BIN) go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

$(BIN)/helm:
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

clean: ## remove built binaries and tools
	rm -rf $(BIN)
