"""JudgeService: the run's judge behind gRPC, with a durable verdict log.

The judge is built from the run's spec (kind, mode, tie policy, seed), exactly as in embedded
mode; a live judge (rubric, pairwise, reward model) keeps its per-request answers in
``<state-dir>/judge-cache-<run>/`` (:mod:`prefloop.judge.cache`), so a response rated for one
pair is not paid for again in another, even after a restart. What a request may ask is decided
by :mod:`prefloop.rpc.judge_intake`: size limits, a pair id that must be the id of the pair's
content (the engine's order-free pair id), and, for the stored-score oracle only, the scores the
service reads from the run's data rather than from the request (a live judge judges the content
sent). Every new verdict is appended to ``<state-dir>/judge-<run>.jsonl``
(:mod:`prefloop.rpc.verdict_log`, held by this process alone) and fsynced *before* the reply is
sent; a pair already in the log is answered from it, in the request's order of the two
responses. So a retried call, a call to a judge restarted after a crash, or the same pair under
another id never judges a pair twice (the invariant that protects the annotation budget), and
no verdict is lost.

With ``--kafka`` every verdict of a reply is also published to the run's judgements topic
(acks=all, msg_id = pair id) before the reply. The fsynced log stays the authority for "never
judge twice": it is local, needs no broker to answer a retry, and a verdict is recorded before a
publish that might fail. A publish that fails makes the call UNAVAILABLE; the retry answers from
the log and publishes the verdicts this process has not published yet (a restarted judge
re-publishes what it answers; the ids are the same, so consumers ignore the copies). The topic is
therefore the data plane's complete copy of every verdict, not the source of truth.

A pair the live judge could not label (its retries ran out) is answered with ``failure`` set and
is neither logged nor published: the engine records it as failed, and asking again judges it
again. A verdict answered from the log costs nothing (its usage is zero); the tokens
of new verdicts count in ``prefloop_judge_tokens_total``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import grpc

from prefloop.bus.base import BusError
from prefloop.engine.build import build_judge
from prefloop.judge.base import Judge, Judgement, JudgeRequest, JudgeUsage
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import judgement_to_msg
from prefloop.rpc.judge_intake import (
    JudgeLimits,
    LimitExceeded,
    PairIntake,
    StoredScores,
    judge_config_key,
)
from prefloop.rpc.server import Registrar, Unavailable
from prefloop.rpc.verdict_log import VerdictLog
from prefloop.v1 import judge_pb2, judge_pb2_grpc

logger = logging.getLogger(__name__)

REPLAYED = JudgeUsage()
"""The usage of a verdict answered from the log: nothing paid (the engine never asks twice for
a pair, so a replay answers a retried or re-sent call whose first answer was lost)."""


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    """Judge: answers recorded pairs from the log, judges the rest once, records, replies.

    Args:
        ctx: the run, its state directory and metrics.
        judge: the judge to use (default: the run's, from its spec).
        limits: bounds on one call (default :class:`JudgeLimits`).

    Raises:
        StartupError: another judge holds the state directory's verdict log.
    """

    def __init__(
        self, ctx: ServiceContext, judge: Judge | None = None, limits: JudgeLimits | None = None
    ) -> None:
        self.ctx = ctx
        self.judge = judge or build_judge(
            ctx.run, ctx.manifest_dir, ctx.state_dir / f"judge-cache-{ctx.run_name}"
        )
        stored = (
            StoredScores.from_run(ctx.run, ctx.manifest_dir)
            if ctx.run.spec.judge.kind == "oracle"
            else None
        )
        self.intake = PairIntake(ctx.run, limits or JudgeLimits(), stored)
        self.log = VerdictLog(
            ctx.state_dir / f"judge-{ctx.run_name}.jsonl", judge_config_key(ctx.run)
        )
        self._lock = asyncio.Lock()
        self.publisher = ctx.publisher()
        self.published: set[str] = set()
        """Pair ids whose verdict this process has published to the judgements topic."""
        self._inflight: dict[tuple[str, ...], asyncio.Future[Any]] = {}
        """Judgements under way, by their pair ids: a retried call joins its first call's."""
        ctx.metrics.judge_tokens.inc(0)

    @property
    def new_calls(self) -> int:
        """New judge calls ever made for this run and judge configuration (one log line each)."""
        return len(self.log.records)

    def close(self) -> None:
        """Release the verdict log (another judge may then take the state directory)."""
        self.log.close()

    async def Judge(
        self, request: judge_pb2.JudgeRequest, context: grpc.aio.ServicerContext
    ) -> judge_pb2.JudgeResponse:
        self.ctx.check_run(request.run)
        try:
            reqs = self.intake.decode(request.pairs)
        except LimitExceeded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"LimitExceeded: {exc}")
        # The judging and its record run in a task of their own, shielded from the RPC: a client
        # that disconnects or times out mid-call cancels only the wait, never the record, so a
        # pair the judge was paid for is logged and answered from the log when asked again. A
        # retry of the same pairs while that task still runs joins it rather than judging again
        # (a human judge's call waits for people, and may outlive many deadlines).
        key = tuple(r.pair_id for r in reqs)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._judge_and_record(reqs, int(request.run.round)))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        try:
            answers, fresh = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_task_failure)
            raise
        return judge_pb2.JudgeResponse(
            annotations=[judgement_to_msg(a) for a in answers], new_calls=len(fresh)
        )

    async def _judge_and_record(
        self, reqs: list[JudgeRequest], round_index: int
    ) -> tuple[list[Judgement], list[JudgeRequest]]:
        """Judge the pairs not in the log, record the verdicts (fsynced), publish, answer all.

        Why: one critical section under the lock, so two calls never judge one pair twice.
        """
        async with self._lock:
            self.log.check_prompts(reqs)
            fresh = list({r.pair_id: r for r in reqs if r.pair_id not in self.log.records}.values())
            failed: dict[str, Judgement] = {}
            if fresh:
                verdicts = await asyncio.to_thread(self.judge.judge, fresh)
                _check_verdicts(fresh, verdicts)
                done = [(r, v) for r, v in zip(fresh, verdicts, strict=True) if not v.failed]
                failed = {v.pair_id: v for v in verdicts if v.failed}
                await asyncio.to_thread(self.log.append, [r for r, _ in done], [v for _, v in done])
                self.ctx.metrics.annotations.inc(len(done))
                self.ctx.metrics.judge_tokens.inc(
                    sum(v.usage.prompt_tokens + v.usage.completion_tokens for v in verdicts)
                )
            new_ids = {r.pair_id for r in fresh}
            answers = [self._answer(r, new_ids, failed) for r in reqs]
            labelled = [(r, a) for r, a in zip(reqs, answers, strict=True) if not a.failed]
            await self._publish([r for r, _ in labelled], [a for _, a in labelled], round_index)
            return answers, fresh

    def _answer(
        self, request: JudgeRequest, new_ids: set[str], failed: dict[str, Judgement]
    ) -> Judgement:
        """A request's answer: its failure, its new verdict, or its recorded one (free)."""
        if request.pair_id in failed:
            return failed[request.pair_id]
        answer = self.log.answer(request)
        return answer if request.pair_id in new_ids else replace(answer, usage=REPLAYED)

    async def _publish(
        self, reqs: list[JudgeRequest], answers: list[Judgement], round: int
    ) -> None:
        """Publish the verdicts of ``reqs`` not yet published by this process (acks=all)."""
        if self.publisher is None:
            return
        todo = {r.pair_id: (r, a) for r, a in zip(reqs, answers, strict=True)}
        pending = [ra for pid, ra in todo.items() if pid not in self.published]
        if not pending:
            return
        try:
            await asyncio.to_thread(
                self.publisher.judgements, round, [r for r, _ in pending], [a for _, a in pending]
            )
        except BusError as exc:
            raise Unavailable(f"judgements topic: {exc}") from exc
        self.published.update(r.pair_id for r, _ in pending)


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


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    """Log the error of a judging task whose caller went away (nobody else would see it)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("judging task failed: %s", task.exception())
