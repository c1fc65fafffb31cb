# Two commands on a fresh machine: `make run` and `make test`. Everything they
# need (the virtualenv from pyproject.toml, buf from package-lock.json) is
# installed here, on first use and again whenever its manifest changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := $(wildcard */__init__.py)

.PHONY: run demo durability-check test test-fast lint bench gen install clean

$(BIN)/.installed: pyproject.toml $(PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(BIN)/.installed node_modules/.installed

SERVICES := quote_svc processor_svc requestor_svc

run: $(BIN)/.installed
	$(BIN)/python tools/run_services.py $(SERVICES)

demo: $(BIN)/.installed
	$(BIN)/python tools/demo.py

durability-check: $(BIN)/.installed
	$(BIN)/python -m tools.durability_check

# Benchmarks, as ratios against references measured in the same run; writes
# docs/benchmarks.md and bench/results.json (under 10 minutes here).
bench: install
	$(BIN)/python -m bench

test: install
	$(BIN)/python -m pytest

# The unit tests alone (in-process, no child processes): under a minute here.
test-fast: install
	$(BIN)/python -m pytest -m unit

lint: install
	npx --no-install buf lint
	bash tools/buf_breaking.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

gen: $(BIN)/.installed
	$(BIN)/python tools/gen_proto.py
	$(BIN)/python tools/gen_config_docs.py

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
