"""RewardService: embedder + feature cache + uncertainty head (or the policy) behind gRPC.

The model is built from the run's spec exactly as in embedded mode (same embedder, same
seeded head initialisation = version 0); with ``trainer.kind: policy`` it is the policy and its
frozen reference, and Score serves the implicit rewards and their MC-dropout samples
(:mod:`prefloop.reward.policy`; :mod:`prefloop.rpc.served_model`). Trained versions come from
the trainer service through the shared checkpoint directory (:mod:`prefloop.rpc.handoff`):
before answering, a call waits (within its deadline) for the newest published version >=
``min_model_version`` and loads it; if none appears in time the call fails with UNAVAILABLE,
which clients retry.

With ``--kafka`` the service learns of versions from the run's checkpoints topic instead of
scanning the directory (:class:`~prefloop.rpc.dataplane.CheckpointFeed`): it loads the announced
version a call asks for, from the record's inline state or from the file its uri names. A
restarted service replays the topic from the beginning and so knows every version at once.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from prefloop.bus.base import BusError
from prefloop.bus.payloads import CheckpointEvent
from prefloop.data.records import ScoredBatch
from prefloop.engine.local_roles import LocalRewardModel
from prefloop.rpc import handoff
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import RequestError, items_from_msgs, scores_to_estimate
from prefloop.rpc.dataplane import CheckpointFeed
from prefloop.rpc.served_model import build_served_model
from prefloop.rpc.server import Registrar, Unavailable
from prefloop.v1 import common_pb2, reward_pb2, reward_pb2_grpc

DEFAULT_WAIT_SECONDS = 60.0
"""How long a call without a deadline waits for its model version."""
POLL_SECONDS = 0.05
FEED_POLL_SECONDS = 0.2
"""How long one poll of the checkpoints topic waits while a call waits for its version."""


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """Score and Evaluate at the requested model version."""

    def __init__(self, ctx: ServiceContext, model: LocalRewardModel | None = None) -> None:
        self.ctx = ctx
        self.served = build_served_model(ctx, model)
        self.model = self.served.model
        self.role = self.served.reward_role()
        self._lock = asyncio.Lock()
        self.feed = None if ctx.bus is None else CheckpointFeed(ctx.bus, ctx.run_name)
        self._loaded: CheckpointEvent | None = None
        ctx.metrics.checkpoint_version.set(0)

    def _feed_target(self, min_version: int) -> CheckpointEvent | int | None:
        """From the checkpoints topic: the announcement to load, 0 (initial head), or None.

        Version 0 (the seeded initial head) is never announced and always exists, so asking for
        it exactly gets it, as any other exact version does (see :meth:`CheckpointFeed.pick`).
        """
        assert self.feed is not None
        if min_version == 0:
            return 0
        try:
            self.feed.poll(0.0)
            event = self.feed.pick(min_version)
            if event is None or event.version != min_version:
                self.feed.poll(FEED_POLL_SECONDS)
                event = self.feed.pick(min_version)
        except BusError as exc:
            raise Unavailable(f"checkpoints topic: {exc}") from exc
        if event is None:
            return 0 if min_version == 0 else None
        return event

    def _target_version(self, min_version: int) -> int | None:
        """The newest published version >= min_version (0 = the initial head), or None."""
        versions = [
            v
            for v in handoff.published_versions(self.ctx.checkpoint_dir, self.ctx.run_name)
            if v >= min_version
        ]
        if versions:
            return versions[-1]
        return 0 if min_version == 0 else None

    def _load_event(self, event: CheckpointEvent) -> None:
        self.served.load_published(CheckpointFeed.head_state(event))
        self.model.version = event.version
        self._loaded = event
        self.ctx.metrics.checkpoint_version.set(event.version)

    def _load(self, version: int) -> None:
        self._loaded = None
        if version == 0:
            self.served.load_initial()
        else:
            path = handoff.version_path(self.ctx.checkpoint_dir, self.ctx.run_name, version)
            blob = handoff.load_blob(path)
            self.served.load_published(blob["head"])
        self.model.version = version
        self.ctx.metrics.checkpoint_version.set(version)

    async def _at_version(self, min_version: int, context: grpc.aio.ServicerContext) -> None:
        """Hold the newest version >= min_version, waiting for it within the call's deadline."""
        remaining = context.time_remaining()
        budget = DEFAULT_WAIT_SECONDS if remaining is None else max(0.0, remaining - 0.5)
        give_up = time.monotonic() + budget
        while True:
            if self.feed is not None:
                found = await asyncio.to_thread(self._feed_target, min_version)
                if isinstance(found, CheckpointEvent):
                    if found is not self._loaded:
                        await asyncio.to_thread(self._load_event, found)
                    return
                target = found
            else:
                target = await asyncio.to_thread(self._target_version, min_version)
            if target is not None:
                if target != self.model.version:
                    await asyncio.to_thread(self._load, target)
                return
            if time.monotonic() >= give_up:
                where = self.ctx.checkpoint_dir if self.feed is None else self.feed.topic
                raise Unavailable(
                    f"min_model_version: version {min_version} of run {self.ctx.run_name!r} "
                    f"has not been published in {where} yet"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def Score(
        self, request: reward_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.RewardEstimate:
        self.ctx.check_run(request.run)
        items = items_from_msgs(request.prompts)
        for i, it in enumerate(items):
            if not it.responses:
                raise RequestError(f"prompts[{i}].responses: empty; nothing to score")
        batch = ScoredBatch.from_items(items)
        async with self._lock:
            await self._at_version(int(request.min_model_version), context)
            scores = await asyncio.to_thread(self.role.score, items, batch.mask)
        return scores_to_estimate(scores, include_features=request.include_features)

    async def Evaluate(
        self, request: reward_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> reward_pb2.EvaluateResponse:
        self.ctx.check_run(request.run)
        items = items_from_msgs(request.prompts)
        for i, it in enumerate(items):
            if len(it.responses) < 2:
                raise RequestError(f"prompts[{i}].responses: evaluation needs >= 2 responses")
        async with self._lock:
            await self._at_version(int(request.min_model_version), context)
            metrics = await asyncio.to_thread(self.role.evaluate, items)
            version = self.model.version
        return reward_pb2.EvaluateResponse(
            metrics={k: float(v) for k, v in metrics.items()}, model_version=version
        )


def register(servicer: RewardServicer) -> Registrar:
    """A registrar for :func:`prefloop.rpc.server.start_server`."""

    def add(server: grpc.aio.Server) -> str:
        reward_pb2_grpc.add_RewardServiceServicer_to_server(servicer, server)
        return str(reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name)

    return add
