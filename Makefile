# Kilometers: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint typecheck unit bench clean

$(BIN)/km: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

## setup: create .venv, install km and the test dependencies (Python and Node)
setup: $(BIN)/km node_modules/.package-lock.json

## demo: record a real MCP session through `km monitor` into the local store and show it
demo: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: setup
	$(BIN)/mypy

## test: everything CI runs
test: setup lint typecheck
	$(BIN)/pytest

## bench: side-by-side benchmarks (direct vs through km); see docs/benchmarks.md
bench: setup
	$(BIN)/python bench/bench_stdio.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
