"""The judge service with a live judge: it judges the content sent (no stored scores), logs only
verdicts (a failed pair is answered as failed, not logged, and judged again when asked again),
answers a logged pair from its log for free, and counts the judge's tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fake_openai import Fault, last_user_text
from live_judge_helpers import CountingJudge, judge_endpoint, live_servers

from prefloop.data.records import PromptItem, Response
from prefloop.engine.selection import pair_id
from prefloop.judge.base import JudgeRequest
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import judge_request_to_msg, judgement_from_msg
from prefloop.rpc.judge_service import JudgeServicer
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.spec import ActiveRun, parse_activerun
from prefloop.v1 import common_pb2, judge_pb2


def rubric_run(judge_url: str) -> ActiveRun:
    endpoint = {"baseUrl": "http://127.0.0.1:9/v1", "model": "m"}
    return parse_activerun(
        {
            "apiVersion": "prefloop.dev/v1alpha1",
            "kind": "ActiveRun",
            "metadata": {"name": "svc"},
            "spec": {
                "prompts": {"path": "/nonexistent/prompts.jsonl"},  # never read: no oracle
                "responses": {
                    "source": "models",
                    "models": [
                        {"name": "a", "backend": "openai", "endpoint": endpoint},
                        {"name": "b", "backend": "openai", "endpoint": endpoint},
                    ],
                },
                "judge": {"kind": "rubric", "llm": {"endpoint": judge_endpoint(judge_url)}},
            },
        }
    )


def call(servicer: JudgeServicer, requests: list[JudgeRequest]) -> judge_pb2.JudgeResponse:
    message = judge_pb2.JudgeRequest(
        run=common_pb2.RunRef(run="svc"), pairs=[judge_request_to_msg(r) for r in requests]
    )
    reply: judge_pb2.JudgeResponse = asyncio.run(servicer.Judge(message, None))  # type: ignore[arg-type]
    return reply


def test_failed_pairs_are_not_logged_and_are_judged_again(tmp_path: Path) -> None:
    broken = {"on": True}

    def fault_for(body: dict[str, Any], number: int) -> Fault | None:
        hit = broken["on"] and "generated b" in last_user_text(body)
        return Fault("server_error") if hit else None

    judge = CountingJudge()
    with live_servers(judge, fault_for=fault_for) as (_, judge_server):
        run = rubric_run(judge_server.base_url)
        metrics = ServiceMetrics()
        ctx = ServiceContext(run, None, tmp_path / "state", tmp_path / "ckpt", metrics)
        servicer = JudgeServicer(ctx)
        try:
            item = PromptItem("p1", "a prompt only the run generated")
            a, b = Response("a", "generated a"), Response("b", "generated b")
            request = JudgeRequest(pair_id("svc", item, a, b), item, a, b)
            (first,) = (judgement_from_msg(m) for m in call(servicer, [request]).annotations)
            assert first.failed and "server_error" in (first.failure or "")
            assert servicer.new_calls == 0  # nothing logged
            broken["on"] = False
            reply = call(servicer, [request])
            assert reply.new_calls == 1
            (second,) = (judgement_from_msg(m) for m in reply.annotations)
            assert not second.failed and second.score_a is not None
            assert second.usage.calls == 4  # b's four ratings (a's were cached on the failure)
            assert servicer.new_calls == 1
            flipped = JudgeRequest(request.pair_id, item, b, a)
            (replayed,) = (judgement_from_msg(m) for m in call(servicer, [flipped]).annotations)
            assert replayed.score_a == second.score_b and replayed.winner == 1 - second.winner
            assert replayed.aspects["a.honesty"] == second.aspects["b.honesty"]
            assert replayed.usage.calls == 0
        finally:
            servicer.close()
    tokens = metrics.registry.get_sample_value("prefloop_judge_tokens_total")
    assert tokens is not None and tokens == (
        first.usage.prompt_tokens
        + first.usage.completion_tokens
        + second.usage.prompt_tokens
        + second.usage.completion_tokens
    )
    assert tokens > 0
    assert (tmp_path / "state" / "judge-cache-svc").is_dir()
