# Two commands on a fresh machine: `make run` and `make test`. Everything they
# need (the virtualenv from pyproject.toml, buf from package-lock.json) is
# installed here, on first use and again whenever its manifest changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := $(wildcard */__init__.py)

.PHONY: run run-secure demo demo-secure durability-check test test-fast lint bench gen install clean web browser

$(BIN)/.installed: pyproject.toml $(PACKAGES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(BIN)/.installed node_modules/.installed

SERVICES := quote_svc processor_svc requestor_svc console_svc

run: $(BIN)/.installed web
	$(BIN)/python tools/run_services.py $(SERVICES)

# The console's page (console_svc serves web/dist): TypeScript clients generated
# from proto/ by buf's local protoc-gen-es into web/src/gen (never committed, so
# always what proto/ says), type-checked by lint, bundled by esbuild.
PROTOS := $(shell find proto -name '*.proto')
WEB_SOURCES := $(shell find web/src -name '*.ts' -not -path 'web/src/gen/*') web/index.html web/style.css

web/src/gen/.generated: $(PROTOS) buf.gen.web.yaml tools/google_rpc_protos.py node_modules/.installed $(BIN)/.installed
	$(BIN)/python tools/google_rpc_protos.py web/build/proto
	npm run --silent web:generate
	touch $@

# The build steps are package.json's scripts, which the Dockerfile runs too.
web/dist/.built: web/src/gen/.generated $(WEB_SOURCES)
	npm run --silent web:bundle
	touch $@

web: web/dist/.built

# Headless Chromium for the console's browser tests, from Debian's packages
# (Playwright's own browser download cannot work here). Installed when missing
# and this is root with apt-get; elsewhere the browser tests skip, saying why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "could not install chromium: the browser tests will skip (or fail in CI)"; \
	else \
		echo "no /usr/bin/chromium, and apt-get as root is not available: the browser tests will skip"; \
	fi

demo: $(BIN)/.installed
	$(BIN)/python tools/demo.py

# The same, with TLS, mTLS and tokens on every call: development credentials
# (tools/dev_credentials.py) in var/dev-credentials, made anew at each start.
DEV_CREDENTIALS := var/dev-credentials
run-secure: $(BIN)/.installed web
	$(BIN)/python tools/dev_credentials.py $(DEV_CREDENTIALS)
	set -a && . $(DEV_CREDENTIALS)/secure.env && set +a && \
		$(BIN)/python tools/run_services.py $(SERVICES)

demo-secure: $(BIN)/.installed
	$(BIN)/python tools/demo.py --ca-file $(DEV_CREDENTIALS)/ca.pem \
		--cert-file $(DEV_CREDENTIALS)/server.pem --key-file $(DEV_CREDENTIALS)/server.key \
		--token-file $(DEV_CREDENTIALS)/submitter.token

durability-check: $(BIN)/.installed
	$(BIN)/python -m tools.durability_check

# Benchmarks, as ratios against references measured in the same run; writes
# docs/benchmarks.md and bench/results.json (under 10 minutes here).
bench: install
	$(BIN)/python -m bench

test: install web browser
	$(BIN)/python -m pytest

# The unit tests alone (in-process, no child processes): under a minute here.
test-fast: install
	$(BIN)/python -m pytest -m unit

lint: install web/src/gen/.generated
	npx --no-install buf lint
	bash tools/buf_breaking.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	npx --no-install tsc -p web/tsconfig.json

gen: $(BIN)/.installed
	$(BIN)/python tools/gen_proto.py
	$(BIN)/python tools/gen_config_docs.py

clean:
	rm -rf $(VENV) node_modules var .pytest_cache web/src/gen web/build web/dist test-artifacts
