# Everyday entry points; each sets up .venv first. Only python3 is needed on PATH.
#   make run    the service with embedded PostgreSQL and NATS (data in .data/)
#   make test   the test suite (extra pytest arguments: make test PYTEST_ARGS='-k servers')
#   make lint   ruff, formatting, mypy and the import layering contracts

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when the inputs change.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/customers run

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# The benchmark (bench/, docs/PERFORMANCE.md): servers started as `make run` starts them.
#   make bench        the full run, 11-18 minutes here: bench/results/latest.json and the doc's table
#   make bench-quick  a smoke run under 2 minutes: bench/results/quick.json
.PHONY: bench bench-quick

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick
