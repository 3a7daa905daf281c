# Every target installs what it needs (idempotently), so each works on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_STAMP := node_modules/.package-lock.json
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

# `npm install` (not `npm ci`): npm 11 writes lock files without other platforms' optional packages,
# which `npm ci` then refuses; install still takes the locked versions.
$(NODE_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

node-deps: $(NODE_STAMP)

python-env: ## Create the pinned Python environment in .venv
	@scripts/python-env.sh

native: ## Compile the zero-copy relay addon from native/relay.c (skipped when up to date; without a compiler the gateway relays in JavaScript)
	@scripts/native.sh

build: node-deps native ## Compile the TypeScript server and the web page's browser modules into dist/ (and the relay addon)
	npx tsc -p tsconfig.json
	npx tsc -p src/web/client/tsconfig.json

run: build python-env ## Run the gateway with zero configuration (local processes)
	node dist/cli.js

test: test-unit test-python test-swarm ## Run every test (installs what it needs)

test-unit: node-deps native ## Unit tests (vitest)
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p src/web/client/tsconfig.json --noEmit
	npx vitest run

test-python: build python-env ## Conformance tests with the real dask-gateway client and dask processes
	$(PYTHON) -m pytest test/python $(PYTEST_ARGS)

fuzz: build python-env ## Fuzz every operation of protocol/openapi.json for longer (FUZZ_EXAMPLES per operation, default 500; FUZZ_SEED)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PYTHON) -m pytest test/python/test_fuzz_protocol.py::test_fuzz -p no:cacheprovider $(PYTEST_ARGS)

soak: build python-env ## Sustained load: SOAK_USERS (50) loop create/scale/compute/delete for SOAK_MINUTES (10) beside SOAK_SIMULATED (1000) heartbeating clusters
	$(PYTHON) test/soak/soak.py --users $${SOAK_USERS:-50} --minutes $${SOAK_MINUTES:-10} --simulated $${SOAK_SIMULATED:-1000}

test-swarm: build python-env ## Tests on a real swarm: make up, three Docker-in-Docker nodes, restart, make down
	scripts/docker-engine.sh --swarm
	$(PYTHON) -m pytest test/swarm $(PYTEST_ARGS)

.PHONY: help node-deps native python-env build run test test-unit test-python test-swarm soak fuzz

BENCH_STAMP := .venv/.bench-requirements
$(BENCH_STAMP): requirements-bench.txt requirements-test.txt requirements.txt | python-env
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	@touch $@

bench: build $(BENCH_STAMP) ## Benchmark against dask-gateway-server side by side (~10 min; writes bench/results/gateway.*)
	$(PYTHON) bench/gateway_bench.py

.PHONY: bench

up: ## Run the gateway on this machine's Docker swarm (creates a swarm, builds images, pushes them to a registry every node pulls from: REGISTRY=host[:port][/prefix] or one on the swarm; prints how to connect)
	@scripts/up.sh

down: ## Remove everything `make up` created (KEEP_REGISTRY=1 keeps the registry, KEEP_REGISTRY_DATA=1 its images)
	@scripts/down.sh

.PHONY: up down
