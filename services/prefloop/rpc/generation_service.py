"""GenerationService: the run's response pool behind gRPC, streamed prompt by prompt.

The generator is the one the embedded engine would build from the spec (stored responses, or a
local transformers / vLLM pool). Sampling seeds are per (run seed, model, prompt), so answering
in chunks and streaming each prompt as soon as its chunk is done gives exactly the responses of
one big call, in request order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from prefloop.engine.build import build_generator
from prefloop.generation.base import ResponseGenerator
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import item_to_msg, items_from_msgs
from prefloop.rpc.server import Registrar
from prefloop.v1 import generation_pb2, generation_pb2_grpc

CHUNK_PROMPTS = 8
"""Prompts generated per backend call (batched decoding), streamed as each chunk is done."""


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Generate: chunks of prompts through the backend, one streamed reply per prompt."""

    def __init__(self, ctx: ServiceContext, generator: ResponseGenerator | None = None) -> None:
        self.ctx = ctx
        self.generator = generator or build_generator(ctx.run, ctx.manifest_dir)
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
