# Tocsin — two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= deploy/local/tocsin.yaml

.PHONY: run test lint typecheck check rules-check system-deps bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python >= 3.11 is required)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: set up the virtualenv, start the local SMTP sink and Tocsin on 127.0.0.1:9095
run: $(STAMP)
	$(BIN)/python deploy/local/run.py --config $(CONFIG)

## system-deps: install Debian packages the integration tests talk to (when root)
system-deps:
	@bash deploy/system-deps.sh

## test: set up, lint, type-check, check the rules and run the whole test suite
test: $(STAMP) system-deps
	$(BIN)/ruff check router adapters tests bench deploy
	$(BIN)/mypy
	$(BIN)/tocsin rules check rules/
	$(BIN)/tocsin rules test rules/
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check router adapters tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy

rules-check: $(STAMP)
	$(BIN)/tocsin rules check rules/
	$(BIN)/tocsin rules test rules/

bench: $(STAMP)
	$(BIN)/python bench/ingest_p2.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
