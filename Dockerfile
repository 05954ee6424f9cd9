# syntax=docker/dockerfile:1
# The prefloop image: the operator, the five role services and the per-run driver all run it
# (`prefloop operator`, `prefloop serve <role>`, `prefloop run`); the Helm chart defaults to it.
#
#   make image                                   # CPU torch (default): prefloop:<version>
#   make image-cuda                              # CUDA torch + vLLM: prefloop:<version>-cuda
#   docker build --build-arg CUDA=1 --build-arg VLLM=1 -t prefloop:0.1.0-cuda .
#
# Build args: CUDA=1 installs torch from the CUDA wheel index (TORCH_CUDA_INDEX, e.g. cu128)
# instead of the CPU one; VLLM=1 adds the `vllm` extra (generation images). The CUDA libraries
# come inside the torch / vLLM wheels, so both variants share the slim Python base; the node
# provides the NVIDIA driver (device plugin + container toolkit).
#
# Two stages: `build` makes a virtualenv in /opt/prefloop; `runtime` copies only that venv onto
# the same base image (same interpreter path, so the venv works unchanged) and runs as the
# unprivileged uid 10001 - the chart's pods additionally mount / read-only with /tmp as emptyDir,
# so every cache is pointed at /tmp.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TORCH_VERSION=2.13.0
ARG CUDA=0
ARG TORCH_CUDA_INDEX=cu128
ARG VLLM=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/prefloop/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# torch first, pinned, from the CPU (or CUDA) wheel index, so no later requirement pulls another.
RUN python -m venv /opt/prefloop \
    && if [ "${CUDA}" = "1" ]; then flavour="${TORCH_CUDA_INDEX}"; else flavour=cpu; fi \
    && pip install --index-url "https://download.pytorch.org/whl/${flavour}" \
        "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY services ./services
COPY operators ./operators
# DL3013: this installs the project itself (its dependencies are bounded in pyproject.toml).
# hadolint ignore=DL3013
RUN extras=operator; if [ "${VLLM}" = "1" ]; then extras="${extras},vllm"; fi \
    && pip install ".[${extras}]" \
    && python -c "import torch, prefloop; print('prefloop', prefloop.__version__, 'torch', torch.__version__)"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG CUDA=0
ARG VLLM=0
LABEL org.opencontainers.image.title="prefloop" \
      org.opencontainers.image.description="Active learning for LLM preference data: operator, role services and driver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/prefloop/prefloop" \
      org.opencontainers.image.documentation="https://github.com/prefloop/prefloop/blob/main/docs/kubernetes.md" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim-bookworm" \
      dev.prefloop.image.cuda="${CUDA}" \
      dev.prefloop.image.vllm="${VLLM}"
RUN groupadd --system --gid 10001 prefloop \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/prefloop --create-home \
        --shell /usr/sbin/nologin prefloop
COPY --from=build /opt/prefloop /opt/prefloop
# DL3064 flags TOKENIZERS_PARALLELISM for the word TOKEN: it is a switch, not a secret.
# hadolint ignore=DL3064
ENV PATH=/opt/prefloop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    HOME=/home/prefloop \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor
WORKDIR /home/prefloop
USER 10001:10001
# gRPC, Prometheus metrics, operator liveness (/healthz).
EXPOSE 8000 9090 8080
ENTRYPOINT ["prefloop"]
CMD ["--help"]
