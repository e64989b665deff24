# Kilometers: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATIC := src/kilometers/server/static
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install setup demo test lint typecheck webtest unit bench bench-peers clean system-deps web types

# the dashboard first: the build hook in setup.py then finds it built and leaves it alone
$(BIN)/km: pyproject.toml setup.py | $(STATIC)/index.html
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

WEB_SOURCES := $(shell find web/src web/index.html web/package.json web/package-lock.json web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)

## web: build the dashboard (TypeScript) into the Python package
$(STATIC)/index.html: $(WEB_SOURCES)
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build
web: $(STATIC)/index.html

## types: regenerate the dashboard's API types (web/src/api-types.ts) from the server's OpenAPI schema
types: install
	$(BIN)/python -m kilometers.server.openapi | (cd web && npm run --silent gen:types)

## system-deps: Debian packages the tests need (Chromium, PostgreSQL 15 server), installed when missing
system-deps:
	@test -x /usr/lib/postgresql/15/bin/initdb || test -n "$$KM_PG_BIN" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	  else echo "install PostgreSQL 15 (Debian: sudo apt-get install postgresql-15) or set KM_PG_BIN" >&2; exit 1; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Chromium (Debian: sudo apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

## install: .venv with km and its Python/Node test dependencies, and the built dashboard
install: $(BIN)/km node_modules/.package-lock.json $(STATIC)/index.html

## setup: install, plus Chromium for the browser tests
setup: install system-deps

## demo: record a real MCP session through `km monitor` into the local store and show it
demo: install
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check --no-cache src tests bench scripts
	$(BIN)/ruff format --no-cache --check src tests bench scripts
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy

## webtest: the dashboard's unit tests (vitest) and its formatting (prettier)
webtest: setup
	cd web && npx vitest run && npx prettier --check src test

## test: everything CI runs
test: setup lint typecheck webtest
	$(BIN)/pytest

## bench: side-by-side benchmarks (direct vs through km); see docs/benchmarks.md
bench: install
	$(BIN)/python bench/bench_stdio.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

## bench-peers: km beside other stdio MCP monitors (installed into .bench-venv only, never into .venv)
.bench-venv/bin/greenlight-mcp:
	$(PY) -m venv .bench-venv
	.bench-venv/bin/pip install -q mcp-snoop==0.1.0 greenlight-mcp==0.7.0
bench-peers: install .bench-venv/bin/greenlight-mcp
	$(BIN)/python bench/bench_peers.py
