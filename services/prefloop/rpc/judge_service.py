"""JudgeService: the run's judge behind gRPC, with a durable verdict log.

The judge is built from the run's spec (kind, mode, tie policy, seed), exactly as in embedded
mode. Every new verdict is appended to ``<state-dir>/judge-<run>.jsonl`` and fsynced *before*
the reply is sent; a pair id already in the log is answered from it. So a retried call, or a
call to a judge restarted after a crash, never judges a pair twice (the invariant that protects
the annotation budget), and no verdict is lost.

With ``--kafka`` every verdict of a reply is also published to the run's judgements topic
(acks=all, msg_id = pair id) before the reply. The fsynced log stays the authority for "never
judge twice": it is local, needs no broker to answer a retry, and a verdict is recorded before a
publish that might fail. A publish that fails makes the call UNAVAILABLE; the retry answers from
the log and publishes the verdicts this process has not published yet (a restarted judge
re-publishes what it answers; the ids are the same, so consumers ignore the copies). The topic is
therefore the data plane's complete copy of every verdict, not the source of truth.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import grpc

from prefloop.bus.base import BusError
from prefloop.engine.build import build_judge
from prefloop.judge.base import Judge, Judgement, JudgeRequest
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import (
    RequestError,
    judge_request_from_msg,
    judgement_from_dict,
    judgement_to_dict,
    judgement_to_msg,
)
from prefloop.rpc.server import Registrar, Unavailable
from prefloop.v1 import judge_pb2, judge_pb2_grpc


class VerdictLog:
    """Append-only JSONL of verdicts, one line per new judge call, reloaded on start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, Judgement] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good = raw.rfind(b"\n") + 1
        if good < len(raw):  # a line torn by a crash mid-write: drop it (it was never replied)
            with self.path.open("r+b") as fh:
                fh.truncate(good)
        for line in raw[:good].splitlines():
            if line.strip():
                j = judgement_from_dict(json.loads(line))
                self.records[j.pair_id] = j

    def append(self, verdicts: list[Judgement]) -> None:
        """Persist verdicts (fsync) before anyone sees them."""
        if not verdicts:
            return
        text = "".join(json.dumps(judgement_to_dict(j), sort_keys=True) + "\n" for j in verdicts)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        for j in verdicts:
            self.records[j.pair_id] = j


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    """Judge: answers recorded pairs from the log, judges the rest once, records, replies."""

    def __init__(self, ctx: ServiceContext, judge: Judge | None = None) -> None:
        self.ctx = ctx
        self.judge = judge or build_judge(ctx.run)
        self.log = VerdictLog(ctx.state_dir / f"judge-{ctx.run_name}.jsonl")
        self._lock = asyncio.Lock()
        self.publisher = ctx.publisher()
        self.published: set[str] = set()
        """Pair ids whose verdict this process has published to the judgements topic."""
        ctx.metrics.judge_tokens.inc(0)

    @property
    def new_calls(self) -> int:
        """New judge calls ever made for this run (one log line each)."""
        return len(self.log.records)

    async def Judge(
        self, request: judge_pb2.JudgeRequest, context: grpc.aio.ServicerContext
    ) -> judge_pb2.JudgeResponse:
        self.ctx.check_run(request.run)
        if not request.pairs:
            raise RequestError("pairs: empty batch; send at least one pair")
        reqs = [judge_request_from_msg(m, f"pairs[{i}]") for i, m in enumerate(request.pairs)]
        async with self._lock:
            fresh: list[JudgeRequest] = []
            seen: set[str] = set()
            for r in reqs:
                if r.pair_id not in self.log.records and r.pair_id not in seen:
                    fresh.append(r)
                    seen.add(r.pair_id)
            if fresh:
                verdicts = await asyncio.to_thread(self.judge.judge, fresh)
                _check_verdicts(fresh, verdicts)
                await asyncio.to_thread(self.log.append, verdicts)
                self.ctx.metrics.annotations.inc(len(verdicts))
            await self._publish(reqs, int(request.run.round))
        return judge_pb2.JudgeResponse(
            annotations=[judgement_to_msg(self.log.records[r.pair_id]) for r in reqs],
            new_calls=len(fresh),
        )

    async def _publish(self, reqs: list[JudgeRequest], round: int) -> None:
        """Publish the verdicts of ``reqs`` not yet published by this process (acks=all)."""
        if self.publisher is None:
            return
        todo = list({r.pair_id: r for r in reqs if r.pair_id not in self.published}.values())
        if not todo:
            return
        verdicts = [self.log.records[r.pair_id] for r in todo]
        try:
            await asyncio.to_thread(self.publisher.judgements, round, todo, verdicts)
        except BusError as exc:
            raise Unavailable(f"judgements topic: {exc}") from exc
        self.published.update(r.pair_id for r in todo)


def _check_verdicts(requests: list[JudgeRequest], verdicts: list[Judgement]) -> None:
    if len(verdicts) != len(requests):
        raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(requests)} pairs")
    for r, v in zip(requests, verdicts, strict=True):
        if r.pair_id != v.pair_id:
            raise RuntimeError(f"judge answered pair {v.pair_id} for request {r.pair_id}")


def register(servicer: JudgeServicer) -> Registrar:
    """A registrar for :func:`prefloop.rpc.server.start_server`."""

    def add(server: grpc.aio.Server) -> str:
        judge_pb2_grpc.add_JudgeServiceServicer_to_server(servicer, server)
        return str(judge_pb2.DESCRIPTOR.services_by_name["JudgeService"].full_name)

    return add
