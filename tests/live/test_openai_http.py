"""The OpenAI-compatible client against a real loopback server: replies, faults, retries, keys."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer, FakeReply, Fault, faults_for_prompts, scripted
from pydantic import ValidationError

from prefloop.llm import (
    ChatFailure,
    ChatRequest,
    ChatResult,
    HttpEndpointConfig,
    OpenAIChatClient,
    parse_chat_response,
)
from prefloop.llm.openai_http import MalformedReply, TooFewChoices, full_jitter_pause
from prefloop.llm.openai_http import retry_after_seconds as read_retry_after

SECRET = "sk-test-DO-NOT-LEAK-0123456789"


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(({"role": "user", "content": text},), **kwargs)


def endpoint(server: FakeOpenAIServer, **kwargs: Any) -> HttpEndpointConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "tiny",
        "timeout_seconds": 5.0,
        "max_attempts": 3,
        "backoff_initial_seconds": 0.001,
        "backoff_max_seconds": 0.01,
    }
    return HttpEndpointConfig(**{**base, **kwargs})


class RecordingSleep:
    """Records the pauses the client asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def test_replies_come_back_typed_and_in_order(fake_openai: FakeOpenAIServer) -> None:
    cfg = endpoint(fake_openai, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    requests = [ask(f"question {i}", n=2, top_logprobs=3, seed=i, max_tokens=9) for i in range(5)]
    out = OpenAIChatClient(cfg).complete_batch(requests)
    assert all(isinstance(r, ChatResult) for r in out)
    results = [r for r in out if isinstance(r, ChatResult)]
    for i, result in enumerate(results):
        assert [c.text for c in result.choices] == [
            f"echo 0: question {i}",
            f"echo 1: question {i}",
        ]
        assert result.attempts == 1
        assert result.prompt_tokens == 2 and result.completion_tokens == 2 * 4
        lp = result.choices[0].logprobs
        assert lp is not None and [t.token for t in lp] == ["echo", "0:", "question", str(i)]
    bodies = sorted(fake_openai.requests, key=lambda b: b["seed"])
    assert bodies[0]["model"] == "tiny" and bodies[0]["max_tokens"] == 9 and bodies[0]["n"] == 2
    assert bodies[0]["logprobs"] is True and bodies[0]["top_logprobs"] == 3
    assert bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert fake_openai.authorizations == [None] * 5  # no key configured: no header


def test_top_logprobs_are_returned_best_first(fake_openai: FakeOpenAIServer) -> None:
    positions = ({"4": -0.1, "5": -2.5, "3": -3.0, "x": -9.0},)
    fake_openai.reply = scripted([FakeReply("4", top_logprobs=positions)])
    out = OpenAIChatClient(endpoint(fake_openai)).complete_batch([ask("rate", top_logprobs=3)])
    assert isinstance(out[0], ChatResult)
    (token,) = out[0].choices[0].logprobs or ()
    assert token.token == "4" and token.logprob == -0.1
    assert token.top_logprobs == (("4", -0.1), ("5", -2.5), ("3", -3.0))
    assert out[0].completion_tokens == 1


FAULTS = [
    (Fault("rate_limit", retry_after="0"), "rate_limited"),
    (Fault("server_error"), "server_error"),
    (Fault("hang", seconds=30.0), "timeout"),
    (Fault("disconnect"), "connection"),
    (Fault("malformed_json"), "malformed"),
    (Fault("fewer_choices"), "too_few_choices"),
    (Fault("bad_logprobs"), "malformed"),
]


@pytest.mark.parametrize(("fault", "kind"), FAULTS, ids=[f.kind for f, _ in FAULTS])
def test_one_fault_is_retried_then_answered(
    fake_openai: FakeOpenAIServer, fault: Fault, kind: str
) -> None:
    fake_openai.inject(fault)
    cfg = endpoint(fake_openai, timeout_seconds=0.3)
    out = OpenAIChatClient(cfg).complete_batch([ask("hello", n=2, top_logprobs=1)])
    assert isinstance(out[0], ChatResult), out[0]
    assert out[0].attempts == 2
    assert [c.text for c in out[0].choices] == ["echo 0: hello", "echo 1: hello"]
    assert fake_openai.request_count == 2
    assert fake_openai.faults_served == [fault.kind]


@pytest.mark.parametrize(("fault", "kind"), FAULTS, ids=[f.kind for f, _ in FAULTS])
def test_a_lasting_fault_ends_as_a_typed_failure_and_spares_the_batch(
    fake_openai: FakeOpenAIServer, fault: Fault, kind: str
) -> None:
    fake_openai.fault_for = faults_for_prompts({"bad": fault})
    cfg = endpoint(fake_openai, timeout_seconds=0.3, max_attempts=3)
    out = OpenAIChatClient(cfg).complete_batch(
        [ask("good", n=2, top_logprobs=1), ask("bad", n=2, top_logprobs=1), ask("fine", n=2)]
    )
    assert isinstance(out[0], ChatResult) and isinstance(out[2], ChatResult)
    assert out[2].choices[0].text == "echo 0: fine"
    failure = out[1]
    assert isinstance(failure, ChatFailure)
    assert failure.kind == kind and failure.attempts == 3
    assert "3 attempt(s), the limit" in failure.message and fake_openai.base_url in failure.message
    assert fake_openai.request_count == 2 + 3


def test_retry_after_is_honoured(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.inject(Fault("rate_limit", retry_after="7"), Fault("rate_limit", retry_after="2"))
    sleep = RecordingSleep()
    cfg = endpoint(fake_openai, retry_budget_seconds=60.0)
    out = OpenAIChatClient(cfg, sleep=sleep).complete_batch([ask("hi")])
    assert isinstance(out[0], ChatResult) and out[0].attempts == 3
    assert sleep.pauses == [7.0, 2.0]


def test_retry_after_beyond_the_budget_fails_at_once(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.inject(Fault("rate_limit", retry_after="120"))
    sleep = RecordingSleep()
    cfg = endpoint(fake_openai, retry_budget_seconds=10.0)
    out = OpenAIChatClient(cfg, sleep=sleep).complete_batch([ask("hi")])
    assert isinstance(out[0], ChatFailure)
    assert out[0].kind == "rate_limited" and out[0].status == 429 and out[0].attempts == 1
    assert "would pass the retry budget of 10s" in out[0].message
    assert sleep.pauses == [] and fake_openai.request_count == 1


def test_pauses_are_full_jitter_below_a_doubling_cap(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.fault_for = lambda body, number: Fault("server_error")
    sleep = RecordingSleep()
    cfg = endpoint(
        fake_openai, max_attempts=8, backoff_initial_seconds=1.0, backoff_max_seconds=8.0
    )
    out = OpenAIChatClient(cfg, sleep=sleep, rng=random.Random(3)).complete_batch([ask("x")])
    assert isinstance(out[0], ChatFailure) and out[0].attempts == 8
    caps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert len(sleep.pauses) == 7
    assert all(0.0 <= p <= cap for p, cap in zip(sleep.pauses, caps, strict=True))
    assert len(set(sleep.pauses)) == 7  # drawn, not fixed
    rng = random.Random(3)
    assert sleep.pauses == [full_jitter_pause(a, 1.0, 8.0, rng) for a in range(1, 8)]


def test_other_client_errors_are_not_retried(fake_openai: FakeOpenAIServer) -> None:
    cfg = endpoint(fake_openai, base_url=fake_openai.base_url + "/wrong")
    out = OpenAIChatClient(cfg).complete_batch([ask("x")])
    assert isinstance(out[0], ChatFailure)
    assert out[0].kind == "client_error" and out[0].status == 404 and out[0].attempts == 1
    assert "not retryable" in out[0].message
    assert fake_openai.request_count == 0


def test_a_closed_port_is_a_connection_failure(fake_openai: FakeOpenAIServer) -> None:
    cfg = endpoint(fake_openai)
    fake_openai.stop()
    out = OpenAIChatClient(cfg).complete_batch([ask("x"), ask("y")])
    assert [type(o) for o in out] == [ChatFailure, ChatFailure]
    assert all(isinstance(o, ChatFailure) and o.kind == "connection" for o in out)
    assert all(o.attempts == 3 for o in out)


def test_a_reply_check_retries_replies_without_a_rating(fake_openai: FakeOpenAIServer) -> None:
    def has_digit(result: ChatResult) -> str | None:
        text = result.choices[0].text
        return None if any(ch.isdigit() for ch in text) else f"no rating digit in {text!r}"

    fake_openai.reply = scripted(["Rating: 4"])
    fake_openai.inject(Fault("text", text="I would rather not say."))
    client = OpenAIChatClient(endpoint(fake_openai))
    out = client.complete_batch([ask("rate it")], check=has_digit)
    assert isinstance(out[0], ChatResult) and out[0].attempts == 2
    assert out[0].choices[0].text == "Rating: 4"

    fake_openai.reply = scripted(["no number here"])
    failed = client.complete_batch([ask("rate it")], check=has_digit)[0]
    assert isinstance(failed, ChatFailure) and failed.kind == "invalid_reply"
    assert "no rating digit in 'no number here'" in failed.message and failed.attempts == 3

    def broken(result: ChatResult) -> str | None:
        raise KeyError("boom")

    raised = client.complete_batch([ask("rate it")], check=broken)[0]
    assert isinstance(raised, ChatFailure) and "the reply check raised KeyError" in raised.message


def test_concurrency_is_bounded(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.latency_seconds = 0.2
    out = OpenAIChatClient(endpoint(fake_openai, max_concurrency=3)).complete_batch(
        [ask(f"q{i}") for i in range(7)]
    )
    assert all(isinstance(o, ChatResult) for o in out)
    assert fake_openai.max_in_flight == 3


def test_the_api_key_is_sent_but_never_logged_or_printed(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PREFLOOP_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    fake_openai.fault_for = faults_for_prompts({"bad": Fault("server_error")})
    fake_openai.inject(Fault("rate_limit", retry_after="0"), Fault("disconnect"))
    cfg = endpoint(fake_openai, api_key_env="PREFLOOP_TEST_KEY")
    client = OpenAIChatClient(cfg)
    out = client.complete_batch([ask("good"), ask("bad")])
    assert isinstance(out[0], ChatResult) and isinstance(out[1], ChatFailure)
    assert set(fake_openai.authorizations) == {f"Bearer {SECRET}"}
    assert "retrying" in caplog.text and "request failed" in caplog.text
    key = cfg.read_api_key()
    shown = [caplog.text, repr(cfg), str(cfg), repr(client), repr(out), str(out), repr(key)]
    shown += [cfg.model_dump_json(), str(key)]
    assert not [s for s in shown if SECRET in s]


def test_the_key_file_is_read_at_call_time(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("first-key\n")
    client = OpenAIChatClient(endpoint(fake_openai, api_key_file=str(key_file)))
    client.complete_batch([ask("a")])
    key_file.write_text("rotated-key")
    client.complete_batch([ask("b")])
    assert fake_openai.authorizations == ["Bearer first-key", "Bearer rotated-key"]


def test_an_unreadable_key_fails_every_request_without_sending(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PREFLOOP_MISSING_KEY", raising=False)
    client = OpenAIChatClient(endpoint(fake_openai, api_key_env="PREFLOOP_MISSING_KEY"))
    out = client.complete_batch([ask("a"), ask("b")])
    assert all(isinstance(o, ChatFailure) and o.kind == "api_key" for o in out)
    assert "PREFLOOP_MISSING_KEY is unset or empty" in out[0].message  # type: ignore[union-attr]
    missing = OpenAIChatClient(endpoint(fake_openai, api_key_file=str(tmp_path / "none")))
    failure = missing.complete_batch([ask("a")])[0]
    assert isinstance(failure, ChatFailure) and "cannot read the API key file" in failure.message
    assert fake_openai.request_count == 0


def test_config_is_typed_camel_case_and_strict() -> None:
    cfg = HttpEndpointConfig.model_validate(
        {"baseUrl": "http://vllm:8000/v1/", "model": "m", "apiKeyEnv": "K", "maxConcurrency": 4}
    )
    assert cfg.chat_url == "http://vllm:8000/v1/chat/completions" and cfg.max_concurrency == 4
    with pytest.raises(ValidationError, match="at most one of apiKeyEnv and apiKeyFile"):
        HttpEndpointConfig(api_key_env="K", api_key_file="/k")
    with pytest.raises(ValidationError, match="apiKey"):
        HttpEndpointConfig.model_validate({"apiKey": SECRET})
    with pytest.raises(ValidationError, match=r"base_url|baseUrl"):
        HttpEndpointConfig(base_url="vllm:8000")


def test_the_sync_facade_works_inside_a_running_loop(fake_openai: FakeOpenAIServer) -> None:
    client = OpenAIChatClient(endpoint(fake_openai))

    async def inside() -> list[Any]:
        return client.complete_batch([ask("from a loop")])

    out = asyncio.run(inside())
    assert isinstance(out[0], ChatResult) and out[0].choices[0].text == "echo 0: from a loop"
    assert client.complete_batch([]) == []


def test_parse_chat_response_orders_by_index_and_checks_types() -> None:
    body = {
        "choices": [
            {"index": 1, "message": {"content": "b"}, "finish_reason": "length"},
            {"index": 0, "message": {"content": "a"}, "finish_reason": "stop"},
        ]
    }
    choices, prompt_tokens, completion_tokens = parse_chat_response(body, 2)
    assert [(c.text, c.finish_reason) for c in choices] == [("a", "stop"), ("b", "length")]
    assert prompt_tokens is None and completion_tokens is None
    with pytest.raises(TooFewChoices):
        parse_chat_response(body, 3)
    with pytest.raises(MalformedReply, match=r"message\.content is not a string"):
        parse_chat_response({"choices": [{"message": {"content": None}}]}, 1)
    nan = {"token": "1", "logprob": math.nan, "top_logprobs": []}
    with pytest.raises(MalformedReply, match="not a number"):
        parse_chat_response(
            {"choices": [{"message": {"content": "1"}, "logprobs": {"content": [nan]}}]}, 1
        )
    with pytest.raises(MalformedReply, match="no list of choices"):
        parse_chat_response([], 1)


def test_retry_after_headers() -> None:
    assert read_retry_after({"Retry-After": "3"}) == 3.0
    assert read_retry_after({"retry-after-ms": "250", "Retry-After": "3"}) == 0.25
    assert read_retry_after({"Retry-After": "soon"}) is None
    assert read_retry_after({"Retry-After": "-1"}) is None
    assert read_retry_after({}) is None
    in_past = read_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert in_past == 0.0
