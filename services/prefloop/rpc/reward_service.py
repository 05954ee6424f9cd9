"""RewardService: embedder + feature cache + uncertainty head (or the policy) behind gRPC.

The model is built from the run's spec exactly as in embedded mode (same embedder, same
seeded head initialisation = version 0); with ``trainer.kind: policy`` it is the policy and its
frozen reference, and Score serves the implicit rewards and their MC-dropout samples
(:mod:`prefloop.reward.policy`; :mod:`prefloop.rpc.served_model`). Trained versions come from
the trainer service (:mod:`prefloop.rpc.version_follower`, shared with the generation service):
before answering, a call waits (within its deadline) for the newest published version >=
``min_model_version`` and loads it; if none appears in time the call fails with UNAVAILABLE,
which clients retry.

With ``--kafka`` the service learns of versions from the run's checkpoints topic instead of
scanning the shared checkpoint directory (:class:`~prefloop.rpc.dataplane.CheckpointFeed`): it
loads the announced version a call asks for, from the record's inline state or from the file its
uri names. A restarted service replays the topic from the beginning and so knows every version.
"""

from __future__ import annotations

import asyncio

import grpc

from prefloop.data.records import ScoredBatch
from prefloop.engine.local_roles import LocalRewardModel
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import RequestError, items_from_msgs, scores_to_estimate
from prefloop.rpc.served_model import build_served_model
from prefloop.rpc.server import Registrar
from prefloop.rpc.version_follower import VersionFollower
from prefloop.v1 import common_pb2, reward_pb2, reward_pb2_grpc


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """Score and Evaluate at the requested model version."""

    def __init__(self, ctx: ServiceContext, model: LocalRewardModel | None = None) -> None:
        self.ctx = ctx
        self.served = build_served_model(ctx, model)
        self.model = self.served.model
        self.role = self.served.reward_role()
        self._lock = asyncio.Lock()
        self.versions = VersionFollower(ctx, self.served, "min_model_version")

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
            await self.versions.hold(int(request.min_model_version), context)
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
            await self.versions.hold(int(request.min_model_version), context)
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
