# exfilguard: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     ?= .venv
PY       := $(VENV)/bin/python
EXFIL    := $(VENV)/bin/exfilguard
STAMP    := $(VENV)/.installed
BENCHED  := $(VENV)/.bench-installed
PLEVIN   := $(VENV)/.plevin-installed
KAFKA    := tools/kafka/kafka.sh
export EXFILGUARD_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092

.PHONY: help install lint browser test test-unit test-integration kafka-up kafka-down topics run stop bench soak fuzz chaos chaos-short helm-check clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "make install: python3 (3.11+) is not on PATH; install it first"; exit 2; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

install: $(STAMP) ## create .venv/ with exfilguard and its test tools installed

lint: $(STAMP) ## ruff, and the layering: a pure core, no part importing the commands
	$(VENV)/bin/ruff check streams tests bench
	$(PY) tools/check_layers.py

kafka-up: $(STAMP) ## start the local Kafka broker on 127.0.0.1:9092 (idempotent)
	@$(KAFKA) up

kafka-down: ## stop the local Kafka broker
	@$(KAFKA) down

topics: kafka-up ## create the input, findings and dead-letter topics
	$(EXFIL) topics create

run: kafka-up topics ## local broker, worker, demo records forwarded, findings printed
	@tools/run-demo.sh

stop: ## stop the worker and the local broker started by `make run`
	@tools/run-demo.sh stop
	@$(KAFKA) down

test: lint helm-check browser $(BENCHED) $(PLEVIN) ## the whole test suite, the real broker included (it starts its own)
	$(VENV)/bin/pytest -q -ra --durations=30 --ignore=tests/helm

test-unit: $(STAMP) ## the tests that need no broker
	$(VENV)/bin/pytest -q -m "not integration"

browser: ## Debian's chromium, for the test that opens the backtest report headless
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "browser: could not install chromium (apt-get); the report test will be skipped"

helm-check: $(STAMP) ## build helm, lint and render the chart, validate it, run the chart tests
	tools/helm-check.sh

# The opt-in plevin extra, so its enrichment tests run too (its data's licences: docs/enrichment.md).
$(PLEVIN): $(STAMP) pyproject.toml
	$(VENV)/bin/pip install -q -e '.[plevin]'
	@touch $@

$(BENCHED): $(STAMP) pyproject.toml
	$(VENV)/bin/pip install -q -e '.[bench]'
	@touch $@

bench: $(BENCHED) ## benchmarks: writes bench/results.json, prints a table (ARGS=--quick: small)
	$(PY) -m bench.run $(ARGS)

fuzz: $(STAMP) ## hostile inputs through detect and the worker's record path (FUZZ_INPUTS=1000000, FUZZ_SEED=1)
	$(PY) tests/fuzzing.py --inputs $${FUZZ_INPUTS:-1000000} --seed $${FUZZ_SEED:-1}

soak: $(STAMP) ## one worker fed steadily for SOAK_SECONDS (1800), RSS sampled (SOAK_ARGS for more)
	$(PY) -m bench.soak --seconds $${SOAK_SECONDS:-1800} $(SOAK_ARGS)

chaos-short: $(STAMP) ## the two-trial form of make chaos, as a test (make test runs it too)
	$(VENV)/bin/pytest -q -ra -m chaos tests/integration/test_chaos.py

chaos: $(STAMP) ## CHAOS_TRIALS (20) trials, each a worker or the broker killed -9 mid-stream; failed ones' logs in .local/chaos
	$(PY) tests/integration/chaos.py --trials $${CHAOS_TRIALS:-20} $(CHAOS_ARGS)

clean: ## remove the venv, caches and local broker data
	-@$(KAFKA) down 2>/dev/null
	rm -rf $(VENV) .cache .local .pytest_cache .ruff_cache
