# prefloop: every target sets itself up (virtualenv + dependencies) on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch first: a later unpinned requirement must find it already satisfied.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Run the quickstart: an ActiveRun manifest over real AlpacaEval data, embedded, on CPU.
run: setup
	$(VENV)/bin/prefloop run examples/quickstart.yaml

lint: setup
	$(VENV)/bin/ruff check services tests operators
	$(VENV)/bin/ruff format --check services tests operators

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q

## Lint, type-check and the whole test suite.
test: lint typecheck unit

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
