# payments-api: build, test and run. `make help` lists the targets.

# Tool versions, pinned here so that CI and every developer install the same.
STRIPE_MOCK_VERSION := v0.203.0
HELM_VERSION        := v3.19.0
STATICCHECK_VERSION := v0.8.2
# promtool checks and unit-tests the chart's alert rules; v0.316.0 is the Go
# module version of the Prometheus 3 release it comes from.
PROMETHEUS_VERSION  := v0.316.0

BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The exact flags the Dockerfile builds with: a static, reproducible binary.
BUILD_FLAGS := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

# The control plane the chart is installed on in tests, built from Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler and etcd pinned in
# charts/cluster, the kwok node and pod simulator in charts/cluster/kwok (its
# Kubernetes libraries are newer). The versions are read from those go.mod files
# and name the binaries, so a binary is rebuilt only when its version changes.
CLUSTER      := charts/cluster
KUBE_VERSION := $(shell awk 'NF > 1 && $$1 == "k8s.io/kubernetes" { print $$2 }' $(CLUSTER)/go.mod)
ETCD_VERSION := $(shell awk 'NF > 1 && $$1 == "go.etcd.io/etcd/server/v3" { print $$2 }' $(CLUSTER)/go.mod)
KWOK_VERSION := $(shell awk 'NF > 1 && $$1 == "sigs.k8s.io/kwok" { print $$2 }' $(CLUSTER)/kwok/go.mod)
KUBE_BIN     := $(BIN)/kube-$(KUBE_VERSION)
# Without the version stamped in, the API server reports v0.0.0, which the chart's
# kubeVersion refuses.
KUBE_LDFLAGS := -s -w $(foreach v,gitVersion=$(KUBE_VERSION) \
  gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION)))) \
  gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) gitTreeState=clean,-X k8s.io/component-base/version.$(v))
# prometheus-operator's CRDs, which the chart's ServiceMonitor and PrometheusRule need:
# taken from its Go module at this version (checked against Go's checksum database).
PROMETHEUS_OPERATOR_VERSION := v0.85.0

export STRIPE_MOCK_BIN := $(BIN)/stripe-mock
export HELM_BIN        := $(BIN)/helm
export PROMTOOL_BIN    := $(BIN)/promtool
export ETCD_BIN        := $(BIN)/etcd-$(ETCD_VERSION)/etcd
export KUBE_APISERVER_BIN          := $(KUBE_BIN)/kube-apiserver
export KUBE_CONTROLLER_MANAGER_BIN := $(KUBE_BIN)/kube-controller-manager
export KUBE_SCHEDULER_BIN          := $(KUBE_BIN)/kube-scheduler
export KWOK_BIN        := $(BIN)/kwok-$(KWOK_VERSION)/kwok
export PROMETHEUS_OPERATOR_CRDS    := $(BIN)/prometheus-operator-crds-$(PROMETHEUS_OPERATOR_VERSION)

.PHONY: help build setup test test-go test-chart test-cluster cluster fuzz lint bench bench-load sandbox tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/payments-api exactly as the Dockerfile does
	CGO_ENABLED=0 go build $(BUILD_FLAGS) -o $(BIN)/payments-api ./cmd/payments-api

test: setup lint test-go test-chart test-cluster fuzz ## run every test: set-up, lint, Go tests with -race, chart tests (rendered, then installed), short fuzzing

# The programs the tests start (Chromium, PostgreSQL, Redis, curl): installed
# with apt-get as root, else a stop at once with the command to run.
setup: ## check for (as root: install) the Debian packages the tests need
	@scripts/setup

test-go: setup tools
	go test -race -count=1 ./...

test-chart: setup tools
	cd charts/test && go test -count=1 ./...

test-cluster: tools cluster $(PROMETHEUS_OPERATOR_CRDS) ## install the chart with helm on a local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
	cd $(CLUSTER) && go test -count=1 ./...

cluster: $(KUBE_APISERVER_BIN) $(KUBE_CONTROLLER_MANAGER_BIN) $(KUBE_SCHEDULER_BIN) $(ETCD_BIN) $(KWOK_BIN) ## build the pinned control plane into bin/ (about 15 minutes of one core the first time)

# One go build for the three, so that the packages they share compile once.
$(KUBE_APISERVER_BIN) $(KUBE_CONTROLLER_MANAGER_BIN) $(KUBE_SCHEDULER_BIN) &:
	cd $(CLUSTER) && CGO_ENABLED=0 go build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $(KUBE_BIN)/ \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	  k8s.io/kubernetes/cmd/kube-scheduler

$(ETCD_BIN):
	cd $(CLUSTER) && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o $@ go.etcd.io/etcd/server/v3

$(KWOK_BIN):
	cd $(CLUSTER)/kwok && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o $@ sigs.k8s.io/kwok/cmd/kwok

$(PROMETHEUS_OPERATOR_CRDS):
	dir=$$(cd / && go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) \
	  | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')/example/prometheus-operator-crd && \
	  mkdir -p $@.tmp && cp $$dir/monitoring.coreos.com_servicemonitors.yaml $$dir/monitoring.coreos.com_prometheusrules.yaml $@.tmp/ && \
	  chmod u+w $@.tmp/* && mv $@.tmp $@

FUZZTIME ?= 10s
fuzz: setup tools ## run each fuzz target briefly (FUZZTIME, default 10s)
	go test -run '^$$' -fuzz '^FuzzMiddleware$$' -fuzztime $(FUZZTIME) ./internal/auth
	go test -run '^$$' -fuzz '^FuzzRememberedHeader$$' -fuzztime $(FUZZTIME) ./internal/auth
	go test -run '^$$' -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./internal/webhook
	go test -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME) ./internal/webhook
	go test -run '^$$' -fuzz '^FuzzValidJSON$$' -fuzztime $(FUZZTIME) ./internal/webhook

lint: ## go.mod tidy, gofmt, go vet and staticcheck, for every Go module
	go mod tidy -diff
	cd charts/test && go mod tidy -diff
	cd $(CLUSTER) && go mod tidy -diff
	cd $(CLUSTER)/kwok && go mod tidy -diff
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	go vet ./...
	cd charts/test && go vet ./...
	cd $(CLUSTER) && go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd charts/test && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd $(CLUSTER) && go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

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

tools: $(BIN)/stripe-mock $(BIN)/helm $(BIN)/promtool ## install the pinned test tools into bin/

$(BIN)/stripe-mock:
	GOBIN=$(BIN) go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

$(BIN)/helm:
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(BIN)/promtool:
	GOBIN=$(BIN) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

clean: ## remove built binaries and tools
	rm -rf $(BIN)
