"""The generation contract, the precomputed backend and vLLM's pure logic (without vLLM)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefloop.data.readers import load_prompt_items
from prefloop.data.records import PromptItem, Response
from prefloop.generation import (
    GenerationError,
    PrecomputedGenerator,
    ResponseGenerator,
    sample_seed,
)
from prefloop.generation.base import MAX_SAMPLE_SEED, append_generated
from prefloop.generation.vllm_backend import INSTALL_HINT, VLLMGenerator, build_requests

SHIPPED = Path(__file__).resolve().parents[2] / "data"


def test_sample_seed_is_stable_and_specific() -> None:
    seeds = {sample_seed(s, m, p) for s in (0, 1) for m in ("a", "b") for p in ("x", "y")}
    assert len(seeds) == 8
    assert all(0 <= s <= MAX_SAMPLE_SEED for s in seeds)
    assert sample_seed(0, "a", "x") == sample_seed(0, "a", "x")


def test_append_generated_keeps_old_responses_and_model_order() -> None:
    items = [PromptItem("p", "q", (Response("old", "t", 1.0),)), PromptItem("r", "s")]
    out = append_generated(items, {"m2": {"p": "A", "r": "B"}, "m1": {"p": "C", "r": "D"}})
    assert out[0].responses == (Response("old", "t", 1.0), Response("m2", "A"), Response("m1", "C"))
    assert out[1].responses == (Response("m2", "B"), Response("m1", "D"))
    with pytest.raises(GenerationError, match="model 'm1' produced no response for prompt 'r'"):
        append_generated(items, {"m1": {"p": "x"}})


def test_precomputed_returns_the_stored_pool() -> None:
    items = load_prompt_items(SHIPPED / "alpacaeval" / "sample100.jsonl", limit=3)
    gen: ResponseGenerator = PrecomputedGenerator()
    assert gen.generate(items, seed=0) == items


def test_precomputed_names_prompts_without_a_pair() -> None:
    items = [
        PromptItem("ok", "q", (Response("a", "x"), Response("b", "y"))),
        PromptItem("lonely", "q", (Response("a", "x"),)),
        PromptItem("bare", "q"),
    ]
    with pytest.raises(GenerationError, match=r"2 prompt\(s\).*'lonely' \(1\), 'bare' \(0\)"):
        PrecomputedGenerator().generate(items, seed=0)


def test_vllm_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install prefloop\[vllm\]"):
        VLLMGenerator({"m": "path"})
    assert "pip install prefloop[vllm]" in INSTALL_HINT


def test_build_requests_sets_a_seed_per_model_and_prompt() -> None:
    items = [PromptItem("p0", "hello"), PromptItem("p1", ({"role": "user", "content": "hi"},))]
    reqs = build_requests(items, "m", 3, max_new_tokens=64, temperature=0.7, top_p=0.9)
    assert [r.prompt_id for r in reqs] == ["p0", "p1"]
    assert reqs[0].messages == [{"role": "user", "content": "hello"}]
    assert reqs[1].prompt_text == "user: hi"
    assert reqs[0].sampling == {
        "n": 1,
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": sample_seed(3, "m", "p0"),
    }
    other = build_requests(items, "other", 3, max_new_tokens=64, temperature=0.7, top_p=0.9)
    assert reqs[0].sampling["seed"] != other[0].sampling["seed"]
    assert reqs[0].sampling["seed"] != reqs[1].sampling["seed"]


@dataclass
class _Completion:
    text: str


@dataclass
class _RequestOutput:
    outputs: list[_Completion]


class _FakeTokenizer:
    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template


def _fake_vllm(calls: list[tuple[str, Any]]) -> types.ModuleType:
    """A stand-in for the vllm module that records what the generator asks of it."""

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class LLM:
        def __init__(self, model: str, seed: int, **kwargs: Any) -> None:
            calls.append(("LLM", {"model": model, "seed": seed, **kwargs}))
            self.model = model

        def get_tokenizer(self) -> _FakeTokenizer:
            return _FakeTokenizer("{{ x }}" if "chat" in self.model else None)

        def chat(
            self, conversations: list[Any], sampling_params: list[Any], **kw: Any
        ) -> list[Any]:
            calls.append(
                ("chat", {"conversations": conversations, "params": sampling_params, **kw})
            )
            return [
                _RequestOutput([_Completion(f" chat {p.kwargs['seed']} ")]) for p in sampling_params
            ]

        def generate(self, prompts: list[str], sampling_params: list[Any], **kw: Any) -> list[Any]:
            calls.append(("generate", {"prompts": prompts, "params": sampling_params, **kw}))
            return [_RequestOutput([_Completion(f"plain {p}")]) for p in prompts]

    module = types.ModuleType("vllm")
    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    return module


def test_vllm_generate_flow_with_a_fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    gen = VLLMGenerator(
        {"a": "/models/chat-a", "b": "/models/base-b"},
        max_new_tokens=32,
        temperature=1.0,
        tensor_parallel_size=2,
        chat_template_kwargs={"enable_thinking": False},
    )
    items = [PromptItem("p0", "hello"), PromptItem("p1", "bye", (Response("old", "x", 0.1),))]
    out = gen.generate(items, seed=5)

    assert [c[0] for c in calls] == ["LLM", "chat", "LLM", "generate"]
    assert calls[0][1]["model"] == "/models/chat-a"
    assert calls[0][1]["seed"] == 5 and calls[0][1]["tensor_parallel_size"] == 2
    chat = calls[1][1]
    assert chat["conversations"] == [
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": "bye"}],
    ]
    assert chat["chat_template_kwargs"] == {"enable_thinking": False}
    assert [p.kwargs["seed"] for p in chat["params"]] == [
        sample_seed(5, "a", "p0"),
        sample_seed(5, "a", "p1"),
    ]
    assert calls[3][1]["prompts"] == ["hello", "bye"]

    assert out[0].responses == (
        Response("a", f"chat {sample_seed(5, 'a', 'p0')}"),
        Response("b", "plain hello"),
    )
    assert out[1].responses[0] == Response("old", "x", 0.1)
    assert [r.model for r in out[1].responses] == ["old", "a", "b"]


def test_vllm_parameter_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm([]))
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        VLLMGenerator({"m": "p"}, top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        VLLMGenerator({"m": "p"}, max_new_tokens=0)
    with pytest.raises(ValueError, match="models must be a non-empty mapping"):
        VLLMGenerator({})
    assert VLLMGenerator({"m": "p"}).generate([], seed=0) == []
