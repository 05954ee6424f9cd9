"""The judge service with a human judge: a retried Judge call joins the judgement already waiting
for people instead of asking them again (a human wait outlives client deadlines); the client
gives a human judge's calls a deadline past the round timeout, and no end without one."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from _human_run import human_judge_spec, manifest, write_pool

from prefloop.engine.round_engine import pair_id
from prefloop.engine.runner import load_pool
from prefloop.judge.base import JudgeRequest
from prefloop.judge.human.judge import human_judge_from_spec
from prefloop.rpc.clients import ClientConfig, people_wait
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import judge_request_to_msg
from prefloop.rpc.human_judge_service import HumanJudgeServicer
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.spec import load_activerun
from prefloop.v1 import common_pb2, judge_pb2


def test_a_retry_joins_the_waiting_judgement(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    write_pool(repo_root, pool)
    spec = human_judge_spec(tokens_file, roundTimeoutSeconds=1.0, onTimeout="carry")
    path = manifest(tmp_path, pool, human_feature_cache, spec)
    run = load_activerun(path)
    items, _ = load_pool(run, path.parent)
    ctx = ServiceContext(run, path.parent, tmp_path / "state", tmp_path / "ckpt", ServiceMetrics())
    ctx.state_dir.mkdir()
    assert run.spec.judge.human is not None
    judge = human_judge_from_spec(
        run.spec.judge.human,
        seed=0,
        manifest_dir=path.parent,
        labels_dir=ctx.state_dir / "human-labels",
        max_annotations=4,
    )
    judge.page_attached.set()  # nobody labels: the round times out
    servicer = HumanJudgeServicer(ctx, judge)
    it = items[0]
    a, b = it.responses[0], it.responses[1]
    req = JudgeRequest(pair_id(run.metadata.name, it, a, b), it, a, b)
    msg = judge_pb2.JudgeRequest(
        run=common_pb2.RunRef(run=run.metadata.name, round=0), pairs=[judge_request_to_msg(req)]
    )

    async def two_calls() -> list[Any]:
        first = asyncio.ensure_future(servicer.Judge(msg, None))
        await asyncio.sleep(0.2)  # the first call waits for people; its client retries
        return list(await asyncio.gather(first, servicer.Judge(msg, None)))

    start = time.monotonic()
    replies = asyncio.run(two_calls())
    elapsed = time.monotonic() - start
    servicer.close()
    assert [r.annotations[0].failure for r in replies] == [replies[0].annotations[0].failure] * 2
    assert "timed out" in replies[0].annotations[0].failure
    assert judge.queue.batch == 1  # the people were asked once
    assert elapsed < 1.8  # one round timeout, not two


def test_client_waits_for_people_past_the_round_timeout(
    tmp_path: Path, tokens_file: Path, repo_root: Path, human_feature_cache: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    write_pool(repo_root, pool)
    base = ClientConfig()
    timed = load_activerun(
        manifest(
            tmp_path,
            pool,
            human_feature_cache,
            human_judge_spec(tokens_file, roundTimeoutSeconds=3600.0),
        )
    )
    config = people_wait(timed, base)
    assert config.deadlines["judge"] == 3660.0 > base.deadlines["judge"]
    assert config.retry_timeout_seconds == base.retry_timeout_seconds + 3660.0
    untimed = load_activerun(
        manifest(tmp_path, pool, human_feature_cache, human_judge_spec(tokens_file))
    )
    assert math.isinf(people_wait(untimed, base).retry_timeout_seconds)
    oracle = load_activerun(
        manifest(tmp_path, pool, human_feature_cache, {"kind": "oracle"}, "oracle")
    )
    assert people_wait(oracle, base) is base
