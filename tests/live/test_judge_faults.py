"""Faults of a judge endpoint: bounded retries, then a recorded failure (never a label); the
API key never appears in logs, reprs or failure messages."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer, FakeReply, Fault, last_user_text
from live_judge_helpers import judge_reply

from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest
from prefloop.judge.llm_backends import JudgeSampling, OpenAIJudgeLLM
from prefloop.judge.pairwise import PairwiseJudge
from prefloop.judge.rubric import RubricJudge
from prefloop.llm import HttpEndpointConfig

SECRET = "sk-test-9f3a7c1e5b"


def endpoint(server: FakeOpenAIServer, **extra: Any) -> HttpEndpointConfig:
    fields: dict[str, Any] = {
        "base_url": server.base_url,
        "model": "judge",
        "max_attempts": 3,
        "timeout_seconds": 0.5,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.02,
        "max_concurrency": 4,
    }
    return HttpEndpointConfig(**{**fields, **extra})


def request() -> JudgeRequest:
    a, b = Response("good-model", "a fine answer"), Response("bad-model", "a bad answer")
    return JudgeRequest("pair-1", PromptItem("p1", "Question?", (a, b)), a, b)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("rate_limit", retry_after="0"),
        Fault("server_error"),
        Fault("hang", seconds=5.0),
        Fault("disconnect"),
        Fault("malformed_json"),
        Fault("text", text="I cannot rate this."),
        Fault("bad_logprobs"),
    ],
    ids=lambda f: f.kind,
)
def test_one_fault_is_retried_and_the_pair_is_judged(fault: Fault) -> None:
    with FakeOpenAIServer(judge_reply) as server:
        server.inject(fault)
        llm = OpenAIJudgeLLM(endpoint(server), JudgeSampling())
        (verdict,) = RubricJudge(llm=llm, config_key="k").judge([request()])
        assert server.faults_served == [fault.kind]
        assert server.request_count == 9  # 8 ratings, one of them asked twice
    assert not verdict.failed and verdict.score_a is not None
    assert verdict.usage.calls == 8 and verdict.usage.failed_calls == 0


def test_429_storm_honours_retry_after_then_fails_the_pair() -> None:
    def storm(body: dict[str, Any], number: int) -> Fault | None:
        return (
            Fault("rate_limit", retry_after="0.05")
            if "bad answer" in last_user_text(body)
            else None
        )

    with FakeOpenAIServer(judge_reply, fault_for=storm) as server:
        llm = OpenAIJudgeLLM(endpoint(server), JudgeSampling())
        (verdict,) = RubricJudge(llm=llm, config_key="k").judge([request()])
        assert server.request_count == 4 + 4 * 3  # a's ratings once, b's 4 x max_attempts
    assert verdict.failed and verdict.winner == 0 and verdict.score_a is None
    assert "rate_limited" in (verdict.failure or "") and "bad-model" in (verdict.failure or "")
    assert verdict.usage.failed_calls >= 1 and verdict.usage.calls == 8


def test_replies_without_a_rating_fail_after_the_bounded_retries() -> None:
    def no_digit(body: dict[str, Any], number: int) -> Fault | None:
        return Fault("text", text="Excellent!") if "bad answer" in last_user_text(body) else None

    with FakeOpenAIServer(judge_reply, fault_for=no_digit) as server:
        llm = OpenAIJudgeLLM(endpoint(server, max_attempts=2), JudgeSampling(top_logprobs=0))
        verdicts = RubricJudge(llm=llm, config_key="k").judge([request(), request()])
        assert server.request_count == 4 + 4 * 2
    assert all(v.failed for v in verdicts)
    assert "invalid_reply" in (verdicts[0].failure or "")
    assert "no label of 1, 2, 3, 4, 5" in (verdicts[0].failure or "")


def test_pairwise_fails_when_one_order_has_no_verdict() -> None:
    def hang_b_first(body: dict[str, Any], number: int) -> Fault | None:
        user = last_user_text(body)
        return Fault("hang", seconds=3.0) if user.index("bad") < user.index("fine") else None

    with FakeOpenAIServer(judge_reply, fault_for=hang_b_first) as server:
        llm = OpenAIJudgeLLM(endpoint(server, timeout_seconds=0.2), JudgeSampling())
        (verdict,) = PairwiseJudge(llm=llm, config_key="k").judge([request()])
        assert server.request_count == 1 + 3
    assert verdict.failed and "timeout" in (verdict.failure or "")


def test_the_api_key_is_sent_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    caplog.set_level(logging.DEBUG)

    def flaky(body: dict[str, Any], number: int) -> Fault | None:
        return Fault("server_error") if number % 2 else None

    with FakeOpenAIServer(judge_reply, fault_for=flaky) as server:
        config = endpoint(server, api_key_env="JUDGE_KEY", max_attempts=2)
        llm = OpenAIJudgeLLM(config, JudgeSampling())
        judge = RubricJudge(llm=llm, config_key="k")
        verdicts = judge.judge([request()])
        assert set(server.authorizations) == {f"Bearer {SECRET}"}
    shown = [
        caplog.text,
        repr(judge),
        repr(llm),
        repr(config),
        str(config),
        config.model_dump_json(),
        *(repr(v) for v in verdicts),
    ]
    assert all(SECRET not in text for text in shown)
    assert "JUDGE_KEY" in config.model_dump_json()  # where the key is, not what it is


def test_log_probabilities_above_zero_are_garbage_and_fail_the_pair() -> None:
    def garbage_for_b(body: dict[str, Any], index: int) -> FakeReply:
        if "bad answer" in last_user_text(body):
            return FakeReply("4", top_logprobs=({"4": 2.0, "5": 0.5},))
        return judge_reply(body, index)

    with FakeOpenAIServer(garbage_for_b) as server:
        llm = OpenAIJudgeLLM(endpoint(server, max_attempts=2), JudgeSampling())
        (verdict,) = RubricJudge(llm=llm, config_key="k").judge([request()])
        assert server.request_count == 4 + 4 * 2
    assert verdict.failed and "garbage first-token log-probabilities" in (verdict.failure or "")
