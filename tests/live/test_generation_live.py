"""Live generation: a tiny LM locally and behind a real loopback OpenAI-compatible server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer, Fault, faults_for_prompts
from tiny_lm import ModelReply

from prefloop.data.records import PromptItem, Response
from prefloop.engine.build import model_backend, system_prompt_policy
from prefloop.generation.base import (
    Generated,
    GenerationFailure,
    PoolGenerator,
    Sampling,
    generation_metrics,
)
from prefloop.generation.openai_backend import OpenAIModel
from prefloop.generation.system_prompts import PRINCIPLE_PROMPTS, SystemPromptPolicy
from prefloop.generation.transformers_backend import TransformersModel
from prefloop.llm import HttpEndpointConfig
from prefloop.spec import ActiveRun, ResponsesSpec

ITEMS = [
    PromptItem("p0", "hello world", source="sharegpt"),
    PromptItem("p1", "how are you today", source="truthful_qa"),
    PromptItem("p2", "the quick brown fox", source="flan_v2_cot"),
]


def endpoint(server: FakeOpenAIServer, **kwargs: Any) -> HttpEndpointConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "tiny-chat",
        "timeout_seconds": 30.0,
        "max_attempts": 3,
        "backoff_initial_seconds": 0.001,
        "backoff_max_seconds": 0.01,
    }
    return HttpEndpointConfig(**{**base, **kwargs})


@pytest.fixture
def model_server(
    fake_openai_factory: Callable[..., FakeOpenAIServer], tiny_models: dict[str, str]
) -> FakeOpenAIServer:
    """The tiny chat model behind a real HTTP server."""
    return fake_openai_factory(reply=ModelReply("chat", tiny_models["chat"]), reply_in_thread=True)


@pytest.mark.parametrize("mode", ["none", "ultrafeedback"])
def test_the_http_backend_answers_as_the_local_backend(
    model_server: FakeOpenAIServer, tiny_models: dict[str, str], mode: str
) -> None:
    policy = SystemPromptPolicy(mode=mode)  # type: ignore[arg-type]
    sampling = Sampling(max_new_tokens=10, temperature=1.0, top_p=0.9)
    local = TransformersModel("chat", tiny_models["chat"], sampling=sampling, system_prompts=policy)
    remote = OpenAIModel("chat", endpoint(model_server), sampling=sampling, system_prompts=policy)
    here = PoolGenerator([local]).generate(ITEMS, seed=5)
    there = PoolGenerator([remote]).generate(ITEMS, seed=5)
    assert there == here  # texts, token counts and principles, over real HTTP
    assert all(len(it.responses) == 1 and it.responses[0].text for it in there)
    assert all(it.responses[0].completion_tokens for it in there)
    principles = [it.responses[0].principle for it in there]
    if mode == "none":
        assert principles == [None, None, None]
        assert all(len(body["messages"]) == 1 for body in model_server.requests)
    else:
        assert principles[1] in ("honesty", "truthfulness")  # truthful_qa
        assert principles[2] in ("helpfulness", "verbalized_calibration")  # flan
        for body in model_server.requests:
            system = body["messages"][0]
            assert system["role"] == "system"
            assert any(system["content"] in texts for texts in PRINCIPLE_PROMPTS.values())
    other_seed = PoolGenerator([remote]).generate(ITEMS, seed=6)
    assert [it.responses[0].text for it in other_seed] != [it.responses[0].text for it in there]


def test_each_model_sends_its_own_sampling_settings(fake_openai: FakeOpenAIServer) -> None:
    greedy = OpenAIModel(
        "greedy",
        endpoint(fake_openai, model="served-a"),
        sampling=Sampling(max_new_tokens=5, temperature=0.0, seed=3),
    )
    warm = OpenAIModel(
        "warm",
        endpoint(fake_openai, model="served-b", extra_body={"chat_template_kwargs": {"x": 1}}),
        sampling=Sampling(max_new_tokens=7, temperature=0.7, top_p=0.8),
    )
    out = PoolGenerator([greedy, warm]).generate(ITEMS[:2], seed=11)
    assert [[r.model for r in it.responses] for it in out] == [["greedy", "warm"]] * 2
    assert out[0].responses[0].text == "echo 0: hello world"
    by_model: dict[str, list[dict[str, Any]]] = {}
    for body in fake_openai.requests:
        by_model.setdefault(body["model"], []).append(body)
    a, b = by_model["served-a"], by_model["served-b"]
    assert {(x["max_tokens"], x["temperature"], x["top_p"]) for x in a} == {(5, 0.0, 1.0)}
    assert {(x["max_tokens"], x["temperature"], x["top_p"]) for x in b} == {(7, 0.7, 0.8)}
    assert all(x["chat_template_kwargs"] == {"x": 1} for x in b)
    assert "chat_template_kwargs" not in a[0]
    assert sorted(x["seed"] for x in a) == sorted(
        Sampling(seed=3).request_seed(11, "greedy", p) for p in ("p0", "p1")
    )
    assert sorted(x["seed"] for x in b) == sorted(
        Sampling().request_seed(11, "warm", p) for p in ("p0", "p1")
    )
    assert out[0].responses[0].prompt_tokens == 2 and out[0].responses[0].completion_tokens == 4


def test_a_failed_request_gives_no_response_and_is_counted(
    fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.fault_for = faults_for_prompts({"how are you today": Fault("server_error")})
    fake_openai.inject(Fault("rate_limit", retry_after="0"))  # the first request: retried
    flaky = OpenAIModel("flaky", endpoint(fake_openai))
    steady = OpenAIModel("steady", endpoint(fake_openai, base_url=fake_openai.base_url))
    with caplog.at_level(logging.WARNING):
        out = PoolGenerator([flaky, steady]).generate(ITEMS, seed=0)
    assert [[r.model for r in it.responses] for it in out] == [
        ["flaky", "steady"],
        [],
        ["flaky", "steady"],
    ]
    assert out[1].generation_failures == ("flaky", "steady")
    assert all(r.text.startswith("echo 0: ") for it in out for r in it.responses)
    metrics = generation_metrics(out)
    assert metrics["generation_failures"] == 2 and metrics["pool_responses"] == 4
    assert "got no response" in caplog.text and "HTTP 500" in caplog.text
    # 3 prompts x 2 models, + 1 retried 429, + 2 x 2 retries of the failing prompt
    assert fake_openai.request_count == 6 + 1 + 4
    answers = flaky.answer([ITEMS[1]], seed=0)
    failure = answers["p1"]
    assert isinstance(failure, GenerationFailure) and failure.kind == "server_error"
    assert failure.message.startswith("model 'flaky', prompt 'p1': ")


def test_a_pool_from_the_spec_mixes_backends(
    model_server: FakeOpenAIServer, tiny_models: dict[str, str]
) -> None:
    spec = ResponsesSpec.model_validate(
        {
            "source": "models",
            "maxNewTokens": 6,
            "temperature": 0.0,
            "systemPrompts": {"mode": "ultrafeedback", "principles": ["harmlessness"]},
            "models": [
                {
                    "name": "local",
                    "path": tiny_models["chat"],
                    "transformers": {"batchSize": 2},
                    "maxNewTokens": 4,
                },
                {
                    "name": "remote",
                    "backend": "openai",
                    "endpoint": {"baseUrl": model_server.base_url, "model": "tiny-chat"},
                    "temperature": 1.0,
                    "seed": 7,
                },
            ],
        }
    )
    policy = system_prompt_policy(spec.system_prompts, None)
    backends = [model_backend(m, spec, policy, None) for m in spec.models]
    assert isinstance(backends[0], TransformersModel) and isinstance(backends[1], OpenAIModel)
    assert backends[0].sampling == Sampling(max_new_tokens=4, temperature=0.0, top_p=1.0)
    assert backends[1].sampling == Sampling(max_new_tokens=6, temperature=1.0, top_p=1.0, seed=7)
    out = PoolGenerator(backends).generate(ITEMS, seed=1)
    for item in out:
        local, remote = item.responses
        assert (local.model, remote.model) == ("local", "remote")
        assert local.principle == remote.principle == "harmlessness"
        assert local.completion_tokens is not None and local.completion_tokens <= 4
        assert remote.completion_tokens is not None and remote.completion_tokens <= 6
    assert all(isinstance(r, Response) and r.text for it in out for r in it.responses)


def test_the_spec_names_what_a_backend_lacks() -> None:
    with pytest.raises(ValueError, match="backend: openai needs `endpoint`"):
        ResponsesSpec.model_validate({"models": [{"name": "a", "backend": "openai"}]})
    with pytest.raises(ValueError, match="backend: vllm needs `path`"):
        ResponsesSpec.model_validate({"models": [{"name": "a", "backend": "vllm"}]})
    with pytest.raises(ValueError, match="`endpoint` is for backend: openai"):
        ResponsesSpec.model_validate(
            {"models": [{"name": "a", "path": "p", "endpoint": {"model": "m"}}]}
        )
    with pytest.raises(ValueError, match="`vllm` is for backend: vllm"):
        ResponsesSpec.model_validate(
            {"models": [{"name": "a", "path": "p", "vllm": {"tensorParallelSize": 2}}]}
        )
    assert isinstance(Generated("x"), Generated)


def test_where_a_model_runs_does_not_change_the_run_fingerprint() -> None:
    def run(endpoint: dict[str, Any], **model: Any) -> ActiveRun:
        models = [
            {"name": "a", "backend": "openai", "endpoint": {"model": "m", **endpoint}, **model},
            {"name": "b", "path": "/models/b"},
        ]
        return ActiveRun.model_validate({"spec": {"responses": {"models": models}}})

    base = run({"baseUrl": "http://a:8000/v1"}).fingerprint()
    moved = run(
        {
            "baseUrl": "http://b:9000/v1",
            "apiKeyEnv": "OTHER_KEY",
            "timeoutSeconds": 5,
            "maxConcurrency": 2,
            "maxAttempts": 9,
        }
    )
    assert moved.fingerprint() == base  # a moved server, another key, other limits: resumable
    assert run({"baseUrl": "http://a:8000/v1", "model": "other"}).fingerprint() != base
    assert run({"baseUrl": "http://a:8000/v1"}, temperature=0.0).fingerprint() != base
    assert run({"baseUrl": "http://a:8000/v1", "extraBody": {"x": 1}}).fingerprint() != base
