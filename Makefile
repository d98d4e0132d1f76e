# Entry points for developers and CI. `make` alone lists the targets.
# Tools for checks are installed on demand into target/tools (scripts/ensure-tools.sh).

CARGO ?= cargo
# Extra arguments for `cargo test`, e.g. `make test TEST_ARGS=--no-fail-fast`.
TEST_ARGS ?=

TOOLS_BIN := $(CURDIR)/target/tools/bin
BUF := $(TOOLS_BIN)/buf
export PATH := $(TOOLS_BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help run build test lint fmt proto-lint clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

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

clean: ## Stop the throwaway PostgreSQL, if any, and remove target/ (tools included)
	-bash scripts/ensure-postgres.sh stop
	$(CARGO) clean
