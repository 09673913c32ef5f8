# Herald's Makefile: every tool it needs is built or installed here, pinned,
# and cached in bin/. Run `make help` for the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Versions of the local control plane; hack/controlplane/go.mod pins the same.
K8S_VERSION  ?= 1.37.2
ETCD_VERSION ?= 3.7.0

BIN         := $(CURDIR)/bin
ASSETS      := $(BIN)/k8s/$(K8S_VERSION)-etcd$(ETCD_VERSION)
KUBE_APISERVER := $(ASSETS)/kube-apiserver
ETCD        := $(ASSETS)/etcd
KUBECTL     ?= kubectl
CONTROLLER_GEN := go tool controller-gen
# helm and promtool are pinned in hack/tools/go.mod, a module of their own so
# their dependencies never move the manager's k8s.io versions.
TOOLS_MOD   := $(CURDIR)/hack/tools/go.mod
HELM        := $(BIN)/helm
PROMTOOL    := $(BIN)/promtool
GO_TEST_FLAGS ?= -count=1 -timeout 25m
# The image: its version is the chart's appVersion; IMG is where image-push
# pushes it (and the name recorded in the OCI layout).
VERSION     ?= $(shell awk '/^appVersion:/ {gsub(/"/, "", $$2); print $$2}' charts/herald/Chart.yaml)
IMG         ?= herald-dev/herald:$(VERSION)
PLATFORMS   ?= linux/amd64,linux/arm64
IMAGE_DIR   := $(BIN)/image

export KUBEBUILDER_ASSETS := $(ASSETS)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: dev
dev: controlplane ## Run a local control plane (etcd + kube-apiserver), the CRDs, samples and the operator. Ctrl-C stops it.
	@echo ">> building the dev environment"
	go build -o $(BIN)/herald-dev ./cmd/herald-dev
	$(BIN)/herald-dev --assets $(ASSETS) --data-dir $(BIN)/dev --crds config/crd/bases --admission config/admission --samples config/samples

.PHONY: run
run: ## Run the manager against the current kubeconfig.
	go run ./cmd --leader-elect=false --namespace=$${HERALD_NAMESPACE:-herald-system}

.PHONY: generate
generate: ## Generate deepcopy code.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC from markers.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role paths="./api/...;./internal/controller/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: dashboard
dashboard: ## Generate the Grafana dashboard (config/grafana/herald.json) from Go.
	go run ./hack/dashboard -out config/grafana/herald.json

# What the Helm chart reads from config/: the CRDs, the RBAC roles, the alert
# rules and the dashboard, copied so a chart packaged alone has them.
CHART := charts/herald
.PHONY: chart-files
chart-files: manifests dashboard ## Copy CRDs, admission policies, RBAC, alert rules and dashboard into the Helm chart; wrap the rules in a PrometheusRule for config/monitoring.
	rm -f $(CHART)/crds/*.yaml $(CHART)/files/rbac/*.yaml $(CHART)/files/admission/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	mkdir -p $(CHART)/files/admission && cp config/admission/notification_immutable.yaml $(CHART)/files/admission/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml config/rbac/sender_role.yaml \
		config/rbac/provider_admin_role.yaml config/rbac/viewer_role.yaml $(CHART)/files/rbac/
	cp config/prometheus/herald-rules.yaml $(CHART)/files/herald-rules.yaml
	{ printf '# Generated from herald-rules.yaml by make chart-files; edit that file.\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: herald\n  labels:\n    app.kubernetes.io/name: herald\nspec:\n'; \
		sed -e '/^#/d' -e 's/^/  /' config/prometheus/herald-rules.yaml; } > config/prometheus/prometheusrule.yaml
	cp config/grafana/herald.json $(CHART)/files/herald.json

# The test API server checks the chart's ServiceMonitor and PrometheusRule
# against CRDs generated from prometheus-operator's API types (the version
# pinned in hack/tools/go.mod), as upstream generates its own.
MONITORING_CRDS := test/deploy/testdata/crds
.PHONY: monitoring-crds
monitoring-crds: ## Generate the ServiceMonitor and PrometheusRule CRDs the chart test applies against.
	@echo ">> generating monitoring.coreos.com CRDs (prometheus-operator API types, hack/tools/go.mod pin)"
	rm -rf $(BIN)/monitoring-crds && mkdir -p $(BIN)/monitoring-crds $(MONITORING_CRDS)
	cd hack/tools && go tool controller-gen crd paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir=$(BIN)/monitoring-crds
	cp $(BIN)/monitoring-crds/monitoring.coreos.com_servicemonitors.yaml $(BIN)/monitoring-crds/monitoring.coreos.com_prometheusrules.yaml $(MONITORING_CRDS)/

.PHONY: verify-generated
verify-generated: generate manifests chart-files monitoring-crds ## Fail when generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config/crd config/rbac config/grafana config/prometheus $(CHART) $(MONITORING_CRDS))" ]; then \
		echo "generated files are stale: run 'make generate manifests chart-files' and commit"; \
		git status --porcelain -- api config/crd config/rbac config/grafana config/prometheus $(CHART) $(MONITORING_CRDS); git diff --stat -- api config $(CHART); exit 1; fi
	@echo ">> generated files are up to date"

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet (the manager's module and hack/tools).
	go vet ./...
	cd hack/tools && go vet ./...

##@ Test

.PHONY: test
test: controlplane tools image ## Run every test (unit, senders against loopback fakes, controllers against a real API server, the chart, the alert rules, the image).
	@echo ">> go test ./... (KUBEBUILDER_ASSETS=$(ASSETS))"
	go test $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: controlplane ## Benchmarks: the end-to-end figures (bin/bench/results.json, docs/benchmarks.md) and the Go benchmarks (render, policy, dispatch, inbound).
	go run ./test/bench -out $(BIN)/bench/results.json
	@# Only the packages that have benchmarks: a package's TestMain (an API
	@# server and a manager in internal/controller) runs even when no test does.
	go test -run '^$$' -bench . -benchmem $$(grep -rl --include='*_test.go' '^func Benchmark' internal | xargs -n1 dirname | sort -u | sed 's|^|./|')

.PHONY: bench-quick
bench-quick: controlplane ## The end-to-end bench with small counts (about a minute); prints the same table, asserts nothing.
	go run ./test/bench -quick -out $(BIN)/bench/results-quick.json

.PHONY: soak
soak: controlplane ## Fault proof at full size: crash (5 SIGKILLs, 10,000 recipients), provider faults, 30 s API server outage, bad input. Prints the figures.
	HERALD_SOAK=full HERALD_SOAK_OUT=$(BIN)/soak/results.json go test -count=1 -timeout 30m -v -run . ./test/soak/ 2>&1 | grep -E '^(=== RUN|--- |\s+\S+_test.go:|soak figures|  Test|ok|FAIL|PASS)'

##@ Build

.PHONY: tools
tools: $(HELM) $(PROMTOOL) ## Build helm and promtool (pinned in hack/tools/go.mod) into bin/.

$(HELM): $(TOOLS_MOD)
	@echo ">> building helm (hack/tools/go.mod pin; first time about 2 minutes)"
	cd hack/tools && go build -trimpath -o $@ \
		-ldflags "-X helm.sh/helm/v4/internal/version.version=$$(go list -m -f '{{.Version}}' helm.sh/helm/v4)" helm.sh/helm/v4/cmd/helm

$(PROMTOOL): $(TOOLS_MOD)
	@echo ">> building promtool (hack/tools/go.mod pin; first time about 4 minutes)"
	cd hack/tools && go build -trimpath -o $@ github.com/prometheus/prometheus/cmd/promtool

.PHONY: build
build: ## Build the manager and the kubectl-herald CLI into bin/.
	go build -o $(BIN)/manager ./cmd
	go build -o $(BIN)/kubectl-herald ./cmd/kubectl-herald

.PHONY: image
image: ## Build the multi-arch image (PLATFORMS) as an OCI layout in bin/image, without Docker.
	@mkdir -p $(BIN)/image-build
	@for p in $$(echo $(PLATFORMS) | tr , ' '); do \
		echo ">> building the manager for $$p (static, time zones embedded)"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -tags timetzdata -ldflags "-s -w" \
			-o $(BIN)/image-build/manager-$${p%/*}-$${p#*/} ./cmd; \
	done
	@echo ">> assembling $(IMG) for $(PLATFORMS) into $(IMAGE_DIR)"
	cd hack/tools && go run ./image -bins $(BIN)/image-build -platforms $(PLATFORMS) -out $(IMAGE_DIR) \
		-ref $(IMG) -version $(VERSION) -revision "$$(git rev-parse HEAD 2>/dev/null || true)"

.PHONY: image-push
image-push: image ## Push the image to IMG (a reachable registry; credentials from the Docker config). Prints the digest to pin.
	cd hack/tools && go run ./image -bins $(BIN)/image-build -platforms $(PLATFORMS) -out $(IMAGE_DIR) \
		-ref $(IMG) -version $(VERSION) -revision "$$(git rev-parse HEAD 2>/dev/null || true)" -push

.PHONY: controlplane
controlplane: $(KUBE_APISERVER) $(ETCD) ## Build kube-apiserver and etcd from the Go module proxy into bin/ (once).

$(KUBE_APISERVER): | check-controlplane-pins
	@echo ">> building kube-apiserver v$(K8S_VERSION) from source (first time only, about 5 minutes on 2 cores)"
	@mkdir -p $(ASSETS)
	cd hack/controlplane && go build -trimpath -ldflags "-s -w" -o $@ ./kube-apiserver
	@echo ">> kube-apiserver ready: $@"

$(ETCD): | check-controlplane-pins
	@echo ">> building etcd v$(ETCD_VERSION) from source (first time only, about 1 minute)"
	@mkdir -p $(ASSETS)
	cd hack/controlplane && go build -trimpath -ldflags "-s -w" -o $@ ./etcd
	@echo ">> etcd ready: $@"

.PHONY: check-controlplane-pins
check-controlplane-pins:
	@grep -q "k8s.io/kubernetes v$(K8S_VERSION)$$" hack/controlplane/go.mod || { echo "hack/controlplane/go.mod does not pin k8s.io/kubernetes v$(K8S_VERSION)"; exit 1; }
	@grep -q "go.etcd.io/etcd/server/v3 v$(ETCD_VERSION)$$" hack/controlplane/go.mod || { echo "hack/controlplane/go.mod does not pin etcd v$(ETCD_VERSION)"; exit 1; }

.PHONY: clean
clean: ## Remove built binaries and dev data (keeps the control plane).
	rm -rf $(BIN)/manager $(BIN)/kubectl-herald $(BIN)/herald-dev $(BIN)/dev
