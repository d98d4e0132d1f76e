# Entry points for developers and CI. `make` alone lists the targets.
# Tools for checks are installed on demand into target/tools (scripts/ensure-tools.sh).

CARGO ?= cargo
# Extra arguments for `cargo test`, e.g. `make test TEST_ARGS=--no-fail-fast`.
TEST_ARGS ?=

TOOLS_BIN := $(CURDIR)/target/tools/bin
BUF := $(TOOLS_BIN)/buf
export PATH := $(TOOLS_BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help run build test lint fmt proto-lint proto-breaking openapi fuzz-api deny deps clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9][a-z0-9-]*:.*## / { printf "  %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## Build and run every service on its embedded defaults; Ctrl-C stops them
	CARGO="$(CARGO)" bash scripts/run-all.sh

build: ## Build the workspace
	$(CARGO) build --workspace

test: ## Run the tests (starts a PostgreSQL for them when none answers)
	bash scripts/ensure-postgres.sh
	$(CARGO) test --workspace $(TEST_ARGS)

lint: ## Check Rust formatting, the protos, and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	@$(MAKE) --no-print-directory proto-lint
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the Rust code and the protos
	$(CARGO) fmt --all
	bash scripts/ensure-tools.sh buf
	cd proto && "$(BUF)" format -w

proto-lint: ## Lint the protos and check their formatting with buf
	bash scripts/ensure-tools.sh buf
	cd proto && "$(BUF)" lint && "$(BUF)" format -d --exit-code

proto-breaking: ## buf breaking (FILE rules) against the merge base with origin/main, else HEAD~1
	bash scripts/ensure-tools.sh buf
	BUF="$(BUF)" bash scripts/proto-breaking.sh

openapi: ## Write the gateway's OpenAPI document to target/openapi.json and validate it
	mkdir -p target
	$(CARGO) run -q -p gateway -- openapi > target/openapi.json
	bash scripts/ensure-tools.sh openapi-spec-validator
	openapi-spec-validator target/openapi.json

fuzz-api: ## schemathesis over /openapi.json of the running system: no 5xx, no schema-valid request refused
	CARGO="$(CARGO)" bash scripts/schemathesis.sh

deny: ## cargo deny: advisories (offline RustSec snapshot), bans, licenses, sources
	bash scripts/ensure-tools.sh cargo-deny
	bash scripts/advisory-db.sh
	# cargo-deny reads the metadata of every platform's dependencies; a build only
	# downloads this platform's, so fetch the rest (the registry is reachable, the
	# advisory database host is not: hence --offline below).
	$(CARGO) fetch --locked
	cargo-deny --locked --offline check

deps: ## Dependencies declared once in the workspace, none unused (cargo-machete)
	python3 scripts/check-deps.py
	bash scripts/ensure-tools.sh cargo-machete
	cargo-machete

clean: ## Stop the throwaway PostgreSQL, if any, and remove target/ (tools included)
	-bash scripts/ensure-postgres.sh stop
	$(CARGO) clean

# --- deployment -----------------------------------------------------------------------
# Images are tagged $(IMAGE_REGISTRY)/<service>:$(IMAGE_TAG); compose uses the same tag.
IMAGE_REGISTRY ?= platform
IMAGE_TAG ?= dev
SERVICES := users orders gateway
# Images: the services and the load generator.
IMAGES := $(SERVICES) loadgen
DOCKER ?= docker
COMPOSE ?= docker compose

.PHONY: docker compose-up compose-down k8s-render helm-lint check-deploy check-metrics observability-copies drill

docker: ## Build the images: the services and loadgen (one Dockerfile, SERVICE build arg; needs Docker + BuildKit)
	@set -e; for s in $(IMAGES); do \
	  DOCKER_BUILDKIT=1 $(DOCKER) build -f deploy/docker/Dockerfile \
	    --build-arg SERVICE=$$s \
	    --build-arg VERSION=$(IMAGE_TAG) \
	    --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	    --build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	    --build-arg SOURCE="$$(git config --get remote.origin.url 2>/dev/null || echo unknown)" \
	    -t $(IMAGE_REGISTRY)/$$s:$(IMAGE_TAG) . ; \
	done

compose-up: ## Build and start everything with docker compose; waits until healthy
	PLATFORM_TAG=$(IMAGE_TAG) $(COMPOSE) up -d --build --wait

compose-down: ## Stop the compose stack (keeps its volumes; `docker compose down -v` drops them)
	PLATFORM_TAG=$(IMAGE_TAG) $(COMPOSE) down --remove-orphans

k8s-render: ## Render every kustomize overlay into target/k8s/
	bash scripts/ensure-tools.sh kubectl
	@set -e; mkdir -p target/k8s; \
	for k in $$(find k8s/overlays -name kustomization.yaml | sort); do \
	  d=$${k%/kustomization.yaml}; out=target/k8s/$$(echo $${d#k8s/overlays/} | tr / -).yaml; \
	  kubectl kustomize $$d > $$out; echo "$$out"; \
	done

helm-lint: ## helm lint --strict the chart with its default and ci/ values
	bash scripts/ensure-tools.sh helm
	@set -e; helm lint --strict helm/platform; \
	for f in helm/platform/ci/*.yaml; do helm lint --strict helm/platform -f $$f; done

observability-copies: ## Copy the Prometheus rules and the dashboard into the chart and the monitoring component
	python3 scripts/sync-observability.py

check-deploy: ## Check every deployment file offline (installs its tools into target/tools)
	bash scripts/check-deploy.sh

check-metrics: ## Run the services, scrape every /metrics, check them with promtool
	bash scripts/scrape-metrics.sh

drill: ## Run the system with a real Prometheus, inject errors, watch the fast-burn alert fire and resolve
	CARGO="$(CARGO)" bash scripts/drill.sh

.PHONY: bench
bench: ## Release binaries, then every benchmark in one sitting: ratios printed and written to target/bench/
	bash scripts/ensure-bench-tools.sh
	$(CARGO) build --release -p gateway -p users -p orders -p system-tests --bin gateway --bin users --bin orders --bin gateway_bench
	$(CARGO) build --profile bench-peer -p edge-overhead --bin echo-server --bin hand-proxy
	python3 bench/run.py $(SUITES)
