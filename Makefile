# Thin wrappers around setup-tool and the test runner. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The tool's own virtualenv is bootstrapped once; the stamp file tracks pyproject.toml.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The end-to-end test's wheels (real torch CPU + its dependencies), fetched once, pinned by
# sha256 in tests/e2e-wheels.txt. E2E_PIP_ARGS adds pip options, e.g. an --extra-index-url.
E2E_WHEELS := .cache/e2e-wheels
E2E_STAMP := $(E2E_WHEELS)/.fetched
E2E_PIP_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help env test e2e-wheels lint detect lock lock-check install doctor bench report clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(STAMP)

env: $(STAMP) ## Detect this machine, lock if needed, install the environment, check it
	$(BIN)/setup-tool env

$(E2E_STAMP): tests/e2e-wheels.txt | $(BIN)/python
	$(BIN)/python -m pip download --quiet --only-binary=:all: --no-deps --require-hashes \
		-r tests/e2e-wheels.txt -d $(E2E_WHEELS) $(E2E_PIP_ARGS)
	@touch $@

e2e-wheels: $(E2E_STAMP) ## Fetch the end-to-end test's wheels once (torch CPU + deps, ~215 MB)

test: $(TEST_STAMP) $(E2E_STAMP) ## Lint (ruff, mypy) and run every test, slow ones included
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(TEST_STAMP) ## Lint and type-check only
	$(BIN)/ruff check .
	$(BIN)/mypy

detect: $(STAMP) ## Show this machine's facts and the PyTorch variant that fits
	$(BIN)/setup-tool detect

lock: $(STAMP) ## Re-lock every variant against conda-forge (needs network access to it)
	$(BIN)/setup-tool lock --variant all

lock-check: $(STAMP) ## Exit non-zero when a lockfile is missing or stale
	$(BIN)/setup-tool lock --variant all --check

install: $(STAMP) ## Install the locked environment for this machine
	$(BIN)/setup-tool install

doctor: $(STAMP) ## Check the accelerator really works inside the environment
	$(BIN)/setup-tool doctor

bench: $(STAMP) ## Time the MNIST benchmark on the best device here
	$(BIN)/setup-tool bench --device auto

report: $(STAMP) ## Compare the benchmark results in results/ (table + PNG plots)
	$(BIN)/setup-tool report

clean: ## Remove the tool's virtualenv and caches (not .envs/ or results/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
