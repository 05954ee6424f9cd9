"""The generation contract, the precomputed backend and vLLM's pure logic (without vLLM)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
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
from prefloop.generation.base import (
    MAX_SAMPLE_SEED,
    Answer,
    Generated,
    GenerationFailure,
    PoolGenerator,
    Sampling,
    append_generated,
    generation_metrics,
)
from prefloop.generation.system_prompts import PRINCIPLE_PROMPTS, SystemPromptPolicy
from prefloop.generation.vllm_backend import (
    INSTALL_HINT,
    VLLMEngineOptions,
    VLLMGenerator,
    VLLMModel,
    build_requests,
    parse_outputs,
)

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


def test_a_failure_adds_no_response_and_is_recorded() -> None:
    items = [PromptItem("p", "q"), PromptItem("r", "s")]
    answers: dict[str, dict[str, Answer]] = {
        "m1": {"p": Generated("A", 5, 2, "honesty"), "r": GenerationFailure("timeout", "slow")},
        "m2": {"p": GenerationFailure("server_error", "500"), "r": Generated("D", 7, 3)},
    }
    out = append_generated(items, answers)
    assert out[0].responses == (Response("m1", "A", None, 5, 2, "honesty"),)
    assert out[0].generation_failures == ("m2",)
    assert out[1].responses == (Response("m2", "D", None, 7, 3),)
    assert out[1].generation_failures == ("m1",)
    assert all(r.text not in ("", "slow", "500") for it in out for r in it.responses)
    assert generation_metrics(out) == {
        "pool_responses": 2,
        "generation_failures": 2,
        "generation_prompt_tokens": 12,
        "generation_completion_tokens": 5,
    }


class _ScriptedBackend:
    """A model backend that answers from a table (for the pool's own logic)."""

    def __init__(self, name: str, table: dict[str, Answer]) -> None:
        self.name = name
        self.table = table
        self.seeds: list[int] = []

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        self.seeds.append(seed)
        return {it.prompt_id: self.table[it.prompt_id] for it in items}


def test_pool_asks_each_model_in_order_and_checks_the_call() -> None:
    a = _ScriptedBackend("a", {"p": Generated("a-p"), "r": GenerationFailure("timeout", "t")})
    b = _ScriptedBackend("b", {"p": Generated("b-p"), "r": Generated("b-r")})
    pool = PoolGenerator([a, b])
    out = pool.generate([PromptItem("p", "q"), PromptItem("r", "s")], seed=9)
    assert [[r.model for r in it.responses] for it in out] == [["a", "b"], ["b"]]
    assert out[1].generation_failures == ("a",)
    assert a.seeds == b.seeds == [9]
    assert pool.generate([], seed=0) == []
    with pytest.raises(GenerationError, match="appears twice"):
        pool.generate([PromptItem("p", "q"), PromptItem("p", "q")], seed=0)
    with pytest.raises(ValueError, match="unique"):
        PoolGenerator([a, _ScriptedBackend("a", {})])
    with pytest.raises(ValueError, match="at least one model"):
        PoolGenerator([])


def test_a_model_seed_replaces_the_call_seed() -> None:
    own = Sampling(seed=42)
    shared = Sampling()
    assert (
        own.request_seed(1, "m", "p") == own.request_seed(2, "m", "p") == sample_seed(42, "m", "p")
    )
    assert shared.request_seed(1, "m", "p") != shared.request_seed(2, "m", "p")
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        Sampling(seed=-1)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1.0)


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
    sampling = Sampling(max_new_tokens=64, temperature=0.7, top_p=0.9)
    reqs = build_requests(items, "m", 3, sampling)
    assert [r.prompt_id for r in reqs] == ["p0", "p1"]
    assert reqs[0].messages == [{"role": "user", "content": "hello"}]
    assert reqs[0].prompt_text == "hello" and reqs[1].prompt_text == "hi"
    assert reqs[0].principle is None
    assert reqs[0].sampling == {
        "n": 1,
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": sample_seed(3, "m", "p0"),
    }
    other = build_requests(items, "other", 3, sampling)
    assert reqs[0].sampling["seed"] != other[0].sampling["seed"]
    assert reqs[0].sampling["seed"] != reqs[1].sampling["seed"]


def test_build_requests_puts_the_system_prompt_first() -> None:
    policy = SystemPromptPolicy(mode="ultrafeedback")
    items = [PromptItem("p0", "what is 2+2?", source="flan_v2_cot")]
    (req,) = build_requests(items, "m", 3, Sampling(), policy)
    assert req.principle in ("helpfulness", "verbalized_calibration")
    assert req.messages[0]["role"] == "system"
    assert req.messages[0]["content"] in PRINCIPLE_PROMPTS[req.principle]
    assert req.messages[1:] == [{"role": "user", "content": "what is 2+2?"}]
    assert req.prompt_text.startswith("system: ") and req.prompt_text.endswith("user: what is 2+2?")


@dataclass
class _Completion:
    text: str
    token_ids: list[int] = field(default_factory=list)


@dataclass
class _RequestOutput:
    outputs: list[_Completion]
    prompt_token_ids: list[int] = field(default_factory=list)


class _FakeTokenizer:
    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template


def _fake_vllm(calls: list[tuple[str, Any]]) -> types.ModuleType:
    """A stand-in for the vllm module that records what the generator asks of it.

    Answers carry token ids (prompt: one per word; completion: one per character); an engine
    refuses a whole batch that holds a prompt containing "TOO LONG", as vLLM does.
    """

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
            if any("TOO LONG" in m["content"] for conv in conversations for m in conv):
                raise ValueError("The decoder prompt is longer than the maximum model length")
            return [
                _RequestOutput(
                    [_Completion(f" chat {p.kwargs['seed']} ", list(range(7)))],
                    list(range(sum(len(m["content"].split()) for m in conv))),
                )
                for conv, p in zip(conversations, sampling_params, strict=True)
            ]

        def generate(self, prompts: list[str], sampling_params: list[Any], **kw: Any) -> list[Any]:
            calls.append(("generate", {"prompts": prompts, "params": sampling_params, **kw}))
            return [_RequestOutput([_Completion(f"plain {p}", [1, 2])], [0]) for p in prompts]

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
    items = [PromptItem("p0", "hello"), PromptItem("p1", "bye now", (Response("old", "x", 0.1),))]
    out = gen.generate(items, seed=5)

    assert [c[0] for c in calls] == ["LLM", "chat", "LLM", "generate"]
    assert calls[0][1]["model"] == "/models/chat-a"
    assert calls[0][1]["seed"] == 5 and calls[0][1]["tensor_parallel_size"] == 2
    chat = calls[1][1]
    assert chat["conversations"] == [
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": "bye now"}],
    ]
    assert chat["chat_template_kwargs"] == {"enable_thinking": False}
    assert [p.kwargs["seed"] for p in chat["params"]] == [
        sample_seed(5, "a", "p0"),
        sample_seed(5, "a", "p1"),
    ]
    assert calls[3][1]["prompts"] == ["hello", "bye now"]

    assert out[0].responses == (
        Response("a", f"chat {sample_seed(5, 'a', 'p0')}", None, 1, 7),
        Response("b", "plain hello", None, 1, 2),
    )
    assert out[1].responses[0] == Response("old", "x", 0.1)
    assert [r.model for r in out[1].responses] == ["old", "a", "b"]
    assert out[1].responses[1].prompt_tokens == 2


def test_vllm_engine_per_model_with_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    big = VLLMModel(
        "big",
        "/models/chat-big",
        sampling=Sampling(max_new_tokens=9, temperature=0.0, seed=17),
        options=VLLMEngineOptions(
            tensor_parallel_size=4, gpu_memory_utilization=0.5, max_model_len=4096, keep_loaded=True
        ),
    )
    small = VLLMModel("small", "/models/chat-small", options=VLLMEngineOptions(max_model_len=512))
    pool = PoolGenerator([big, small])
    pool.generate([PromptItem("p0", "hello")], seed=1)
    pool.generate([PromptItem("p1", "again")], seed=2)
    engines = [c[1] for c in calls if c[0] == "LLM"]
    assert engines == [
        {
            "model": "/models/chat-big",
            "seed": 17,
            "tensor_parallel_size": 4,
            "gpu_memory_utilization": 0.5,
            "max_model_len": 4096,
        },
        {
            "model": "/models/chat-small",
            "seed": 1,
            "tensor_parallel_size": 1,
            "gpu_memory_utilization": 0.9,
            "max_model_len": 512,
        },
        {  # small is released after each batch; big (keep_loaded) is not rebuilt
            "model": "/models/chat-small",
            "seed": 2,
            "tensor_parallel_size": 1,
            "gpu_memory_utilization": 0.9,
            "max_model_len": 512,
        },
    ]
    first_chat = next(c[1] for c in calls if c[0] == "chat")
    assert first_chat["params"][0].kwargs == {
        "n": 1,
        "max_tokens": 9,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": sample_seed(17, "big", "p0"),
    }


def test_vllm_isolates_a_prompt_the_engine_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    model = VLLMModel("a", "/models/chat-a")
    items = [PromptItem("ok", "fine"), PromptItem("bad", "TOO LONG"), PromptItem("ok2", "good")]
    out = PoolGenerator([model]).generate(items, seed=0)
    assert [len(it.responses) for it in out] == [1, 0, 1]
    assert out[1].generation_failures == ("a",)
    assert [c[0] for c in calls] == ["LLM", "chat", "chat", "chat", "chat"]
    answers = VLLMModel("a", "/models/chat-a").answer([items[1]], seed=0)
    failure = answers["bad"]
    assert isinstance(failure, GenerationFailure) and failure.kind == "engine_error"
    assert "longer than the maximum model length" in failure.message


def test_parse_outputs_reads_text_and_token_counts() -> None:
    requests = build_requests([PromptItem("p", "q"), PromptItem("r", "s")], "m", 0, Sampling())
    outputs = [_RequestOutput([_Completion("  hi  ", [1, 2, 3])], [9, 9]), _RequestOutput([])]
    answers = parse_outputs(requests, outputs)
    assert answers["p"] == Generated("hi", prompt_tokens=2, completion_tokens=3)
    assert isinstance(answers["r"], GenerationFailure) and answers["r"].kind == "empty_output"
    with pytest.raises(ValueError, match="1 outputs for 2 requests"):
        parse_outputs(requests, outputs[:1])


def test_vllm_parameter_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm([]))
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        VLLMGenerator({"m": "p"}, top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        VLLMGenerator({"m": "p"}, max_new_tokens=0)
    with pytest.raises(ValueError, match="models must be a non-empty mapping"):
        VLLMGenerator({})
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        VLLMEngineOptions(tensor_parallel_size=0)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        VLLMEngineOptions(gpu_memory_utilization=1.5)
    assert VLLMGenerator({"m": "p"}).generate([], seed=0) == []
