"""The judge service decides what a pair is and what it scores, not the client (issue 8, item 1).

A real JudgeService on loopback judges the shrunk quickstart's stored responses with the run's
own oracle, wrapped in the embedded judge role (which counts judge calls): one pair under two
ids is judged once (the second id is refused, naming both ids); an id replayed with other
content is refused; the oracle's scores come from the run's data, not from the request;
oversized batches, ids and texts are refused with the code and the limit; the verdict log has
one owner.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from rpc_helpers import (
    QUICKSTART,
    InProcessServer,
    context,
    expect,
    judge_pair,
    overrides,
    quickstart_items,
)
from rpc_helpers import shrunk_run as quickstart_run

from prefloop.data.records import Response
from prefloop.engine.build import build_judge
from prefloop.engine.local_roles import LocalJudge
from prefloop.rpc import judge_service
from prefloop.rpc.judge_intake import JudgeLimits
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig, StartupError
from prefloop.spec import load_activerun
from prefloop.v1 import common_pb2, judge_pb2, judge_pb2_grpc

RUN = common_pb2.RunRef(run="quickstart")
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass
class JudgeUnderTest:
    stub: judge_pb2_grpc.JudgeServiceStub
    counter: LocalJudge
    servicer: judge_service.JudgeServicer
    state_dir: Path

    def judge(self, *pairs: common_pb2.PairToJudge) -> judge_pb2.JudgeResponse:
        return self.stub.Judge(judge_pb2.JudgeRequest(run=RUN, pairs=list(pairs)), timeout=30)

    def log_lines(self) -> list[dict[str, object]]:
        path = self.state_dir / "judge-quickstart.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def judge(tmp_path: Path) -> Iterator[JudgeUnderTest]:
    run = quickstart_run(tmp_path / "cache")
    metrics = ServiceMetrics()
    ctx = context(run, tmp_path, metrics)
    counter = LocalJudge(build_judge(run))  # counts the pairs it judges
    servicer = judge_service.JudgeServicer(ctx, judge=counter)
    srv = InProcessServer([judge_service.register(servicer)], metrics, ServerConfig())
    try:
        with grpc.insecure_channel(srv.address) as ch:
            yield JudgeUnderTest(
                judge_pb2_grpc.JudgeServiceStub(ch), counter, servicer, ctx.state_dir
            )
    finally:
        srv.stop()
        servicer.close()


def scored_pair(k: int) -> common_pb2.PairToJudge:
    """A pair of the k-th quickstart prompt whose two stored scores differ."""
    it = quickstart_items()[k]
    scores = [r.score for r in it.responses]
    j = next(j for j in range(1, len(scores)) if scores[j] != scores[0])
    return judge_pair(it, 0, j)


def reversed_pair(msg: common_pb2.PairToJudge) -> common_pb2.PairToJudge:
    out = common_pb2.PairToJudge()
    out.CopyFrom(msg)
    out.a.CopyFrom(msg.b)
    out.b.CopyFrom(msg.a)
    return out


def test_one_pair_under_two_ids_is_judged_once(judge: JudgeUnderTest) -> None:
    pair = scored_pair(0)
    first = judge.judge(pair)
    assert first.new_calls == 1 and first.annotations[0].pair_id == pair.pair_id

    dup = common_pb2.PairToJudge()
    dup.CopyFrom(pair)
    dup.pair_id = "dupB"
    expect(INVALID, ["pairs[0].pair_id", "'dupB'", pair.pair_id], judge.stub.Judge,
           judge_pb2.JudgeRequest(run=RUN, pairs=[dup]))  # fmt: skip

    # the same pair in the other order, and twice in one call: answered from the log,
    # turned around to the request's order
    again = judge.judge(reversed_pair(pair), pair)
    assert again.new_calls == 0
    flipped, same = again.annotations
    assert same == first.annotations[0]
    assert flipped.winner == 1 - same.winner
    assert flipped.probability_a == pytest.approx(1 - same.probability_a)
    assert (flipped.score_a, flipped.score_b) == (same.score_b, same.score_a)
    assert judge.counter.calls == 1
    assert len(judge.log_lines()) == 1


def test_an_id_replayed_with_other_content_is_refused(judge: JudgeUnderTest) -> None:
    pair = scored_pair(1)
    judge.judge(pair)
    other = common_pb2.PairToJudge()
    other.CopyFrom(pair)
    other.b.CopyFrom(judge_pair(quickstart_items()[1], 0, 5).b)  # another response, same id
    assert other.b.text != pair.b.text
    expect(INVALID, ["pairs[0].pair_id", pair.pair_id, "is not this pair's id"],
           judge.stub.Judge, judge_pb2.JudgeRequest(run=RUN, pairs=[other]))  # fmt: skip

    retexted = common_pb2.PairToJudge()
    retexted.CopyFrom(pair)
    retexted.prompt.text = pair.prompt.text + " (edited)"
    expect(INVALID, ["pairs[0].prompt"], judge.stub.Judge,
           judge_pb2.JudgeRequest(run=RUN, pairs=[retexted]))  # fmt: skip
    assert judge.counter.calls == 1


def test_the_oracle_uses_the_runs_scores_not_the_requests(judge: JudgeUnderTest) -> None:
    honest = scored_pair(2)
    forged = common_pb2.PairToJudge()
    forged.CopyFrom(honest)
    forged.a.score, forged.b.score = honest.b.score, honest.a.score  # would flip the verdict
    expect(INVALID, ["pairs[0].a.score", "stored score"], judge.stub.Judge,
           judge_pb2.JudgeRequest(run=RUN, pairs=[forged]))  # fmt: skip
    for bad, words in ((float("nan"), ["pairs[0].b.score", "NaN"]),
                       (float("inf"), ["pairs[0].b.score", "infinite"])):  # fmt: skip
        forged.CopyFrom(honest)
        forged.b.score = bad
        expect(INVALID, words, judge.stub.Judge, judge_pb2.JudgeRequest(run=RUN, pairs=[forged]))
    it = quickstart_items()[6]
    unknown_prompt = judge_pair(replace(it, prompt_id="not-in-the-data"), 0, 1)
    expect(INVALID, ["pairs[0].prompt.prompt_id", "not-in-the-data"], judge.stub.Judge,
           judge_pb2.JudgeRequest(run=RUN, pairs=[unknown_prompt]))  # fmt: skip
    made_up = replace(it, responses=(it.responses[0], Response("made-up", "an answer", 0.9)))
    expect(INVALID, ["pairs[0].b", "'made-up'"], judge.stub.Judge,
           judge_pb2.JudgeRequest(run=RUN, pairs=[judge_pair(made_up, 0, 1)]))  # fmt: skip
    assert judge.counter.calls == 0

    unscored = common_pb2.PairToJudge()
    unscored.CopyFrom(honest)
    unscored.a.ClearField("score")
    unscored.b.ClearField("score")
    verdict = judge.judge(unscored).annotations[0]
    assert verdict.winner == (0 if honest.a.score > honest.b.score else 1)
    assert (verdict.score_a, verdict.score_b) == (honest.a.score, honest.b.score)


def test_oversized_batches_ids_and_texts_are_refused(judge: JudgeUnderTest) -> None:
    pair = scored_pair(3)
    limit = JudgeLimits()
    many = judge_pb2.JudgeRequest(run=RUN, pairs=[pair] * 5000)
    expect(EXHAUSTED, ["5000 pairs", f"max_pairs_per_call = {limit.max_pairs_per_call}"],
           judge.stub.Judge, many)  # fmt: skip

    long_id = common_pb2.PairToJudge()
    long_id.CopyFrom(pair)
    long_id.pair_id = "x" * (1 << 20)
    expect(INVALID, ["pairs[0].pair_id", f"max_id_chars = {limit.max_id_chars}"],
           judge.stub.Judge, judge_pb2.JudgeRequest(run=RUN, pairs=[long_id]))  # fmt: skip

    long_text = common_pb2.PairToJudge()
    long_text.CopyFrom(pair)
    long_text.a.text = "y" * (limit.max_text_chars + 1)
    expect(EXHAUSTED, ["pairs[0].a.text", f"max_text_chars = {limit.max_text_chars}"],
           judge.stub.Judge, judge_pb2.JudgeRequest(run=RUN, pairs=[long_text]))  # fmt: skip
    assert judge.counter.calls == 0 and judge.log_lines() == []


def test_the_verdict_log_has_one_owner(judge: JudgeUnderTest, tmp_path: Path) -> None:
    pair = scored_pair(4)
    first = judge.judge(pair).annotations[0]
    ctx = judge.servicer.ctx
    with pytest.raises(StartupError) as err:
        judge_service.JudgeServicer(ctx)
    assert str(ctx.state_dir) in str(err.value) and f"pid {os.getpid()}" in str(err.value)

    judge.servicer.close()  # the owner stops: a restarted judge takes over and answers from the log
    restarted = judge_service.JudgeServicer(ctx)
    try:
        assert restarted.log.records[pair.pair_id].verdict.winner == first.winner
    finally:
        restarted.close()


def test_verdicts_of_another_judge_configuration_are_not_reused(
    judge: JudgeUnderTest, tmp_path: Path
) -> None:
    pair = scored_pair(5)
    judge.judge(pair)
    judge.servicer.close()
    noisy = load_activerun(
        QUICKSTART, [*overrides(tmp_path / "cache"), "spec.judge.mode=bradley_terry"]
    )
    other = judge_service.JudgeServicer(context(noisy, tmp_path))
    try:
        assert other.log.records == {} and other.log.other_configs == 1
    finally:
        other.close()
    assert len(judge.log_lines()) == 1  # kept in the file


class _GatedJudge:
    """A judge role that holds its answer until the test opens the gate (a slow LLM judge)."""

    def __init__(self, inner: LocalJudge) -> None:
        self.inner, self.name = inner, inner.name
        self.gate, self.entered = threading.Event(), threading.Event()

    def judge(self, requests: list[Any]) -> list[Any]:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.judge(requests)


def test_a_caller_that_gives_up_mid_judgement_does_not_make_it_paid_twice(
    tmp_path: Path,
) -> None:
    run = quickstart_run(tmp_path / "cache")
    metrics = ServiceMetrics()
    ctx = context(run, tmp_path, metrics)
    counter = LocalJudge(build_judge(run))
    gated = _GatedJudge(counter)
    servicer = judge_service.JudgeServicer(ctx, judge=gated)  # type: ignore[arg-type]
    srv = InProcessServer([judge_service.register(servicer)], metrics, ServerConfig())
    try:
        with grpc.insecure_channel(srv.address) as ch:
            stub = judge_pb2_grpc.JudgeServiceStub(ch)
            pair = scored_pair(1)
            request = judge_pb2.JudgeRequest(run=RUN, pairs=[pair])
            with pytest.raises(grpc.RpcError) as gone:
                stub.Judge(request, timeout=1.0)  # the client gives up while the judge works
            assert gone.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert gated.entered.is_set()
            gated.gate.set()  # the judgement the run paid for arrives after the caller left
            deadline = time.monotonic() + 30
            log = ctx.state_dir / "judge-quickstart.jsonl"
            while time.monotonic() < deadline and not (log.exists() and log.read_text()):
                time.sleep(0.05)
            again = stub.Judge(request, timeout=30)  # the retry is answered from the log
    finally:
        srv.stop()
        servicer.close()
    assert again.new_calls == 0
    assert counter.calls == 1
    assert len(log.read_text().splitlines()) == 1
