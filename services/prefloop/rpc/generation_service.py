"""GenerationService: the run's response pool behind gRPC, streamed prompt by prompt.

The generator is the one the embedded engine would build from the spec (stored responses, or a
local transformers / vLLM pool). Sampling seeds are per (run seed, model, prompt), so answering
in chunks and streaming each prompt as soon as its chunk is done gives exactly the responses of
one big call, in request order.

With ``backend: policy`` pool entries (AE-Borda-DPO online, docs/training.md) the service builds
the policy from the manifest as the trainer does, and each Generate call samples at exactly the
request's ``policy_version``: the version is loaded from the checkpoints topic (``--kafka``) or
the shared checkpoint directory by the reward service's path
(:class:`~prefloop.rpc.version_follower.VersionFollower`), so round r samples from the weights of
version r - 1 as in the embedded run. A version that never appears fails the call with
UNAVAILABLE (retried); one that cannot be loaded, with INVALID_ARGUMENT naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from prefloop.engine.build import build_generator, build_policy_model
from prefloop.generation.base import ResponseGenerator
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import item_to_msg, items_from_msgs
from prefloop.rpc.served_model import ServedPolicy
from prefloop.rpc.server import Registrar
from prefloop.rpc.version_follower import VersionFollower
from prefloop.v1 import generation_pb2, generation_pb2_grpc

CHUNK_PROMPTS = 8
"""Prompts generated per backend call (batched decoding), streamed as each chunk is done."""


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Generate: chunks of prompts through the backend, one streamed reply per prompt."""

    def __init__(self, ctx: ServiceContext, generator: ResponseGenerator | None = None) -> None:
        self.ctx = ctx
        self.versions: VersionFollower | None = None
        """Loads the requested policy version (None: the pool samples from no policy)."""
        policy = None
        if generator is None and any(m.backend == "policy" for m in ctx.run.spec.responses.models):
            policy = build_policy_model(ctx.run, ctx.manifest_dir)
            self.versions = VersionFollower(ctx, ServedPolicy(policy), "policy_version")
        self.generator = generator or build_generator(ctx.run, ctx.manifest_dir, policy)
        self._lock = asyncio.Lock()

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        self.ctx.check_run(request.run)
        items = items_from_msgs(request.prompts)
        seed = int(request.seed)
        for start in range(0, len(items), CHUNK_PROMPTS):
            chunk = items[start : start + CHUNK_PROMPTS]
            async with self._lock:
                if self.versions is not None:  # every chunk: another call may have moved it
                    await self.versions.hold(int(request.policy_version), context, exact=True)
                done = await asyncio.to_thread(self.generator.generate, chunk, seed=seed)
            for before, after in zip(chunk, done, strict=True):
                self.ctx.metrics.responses_generated.inc(
                    max(0, len(after.responses) - len(before.responses))
                )
                yield generation_pb2.GenerateResponse(prompt=item_to_msg(after))


def register(servicer: GenerationServicer) -> Registrar:
    """A registrar for :func:`prefloop.rpc.server.start_server`."""

    def add(server: grpc.aio.Server) -> str:
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
        return str(generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name)

    return add
