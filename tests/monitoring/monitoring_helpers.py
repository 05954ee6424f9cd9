"""Helpers of the monitoring tests: a live scrape of a real role server and a driver's gauges.

The server is the one ``prefloop serve`` runs (``start_server`` with real servicers built by
``build_registrar`` from the quickstart manifest): generation (precomputed responses, so no
model) and acquisition on one grpc.aio server on loopback, metrics on their own port. A known
set of calls - unary OK and failing, a server stream OK and failing, health checks, a
reflection stream - runs against it, then both endpoints are scraped over HTTP. The driver's
gauges come from a :class:`DriverMetrics` fed one round row, served the same way.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from prefloop.data.records import PromptItem, Response
from prefloop.engine.metrics import DriverMetrics
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.convert import item_to_msg
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.serve import build_registrar
from prefloop.rpc.server import ServerConfig, start_server
from prefloop.spec import ActiveRun, load_activerun
from prefloop.v1 import (
    acquisition_pb2,
    acquisition_pb2_grpc,
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
GENERATION = "prefloop.v1.GenerationService"
ACQUISITION = "prefloop.v1.AcquisitionService"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"

LIST_METHODS_CALLS = 2
HEALTH_CHECKS = 3
PROMPTS_STREAMED = 3
REFLECTION_REQUESTS = 2
DRIVER_ROW = {
    "round": 1,
    "annotations_used": 16,
    "model_version": 1,
    "heldout_accuracy": 0.625,
    "round_seconds": 3.5,
}
"""One round's metrics row, as the round engine hands it to ``on_round``."""


@dataclass(frozen=True)
class LiveScrape:
    """What the calls left in the two /metrics endpoints."""

    service_text: str
    driver_text: str
    run: ActiveRun


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    """GET /metrics as Prometheus would."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def items(n: int) -> list[PromptItem]:
    """``n`` prompts that already carry two responses (the precomputed generator keeps them)."""
    return [
        PromptItem(f"p{i}", f"prompt {i}", (Response("a", f"a{i}"), Response("b", f"b{i}")))
        for i in range(n)
    ]


async def expect_invalid(call: Awaitable[Any] | AsyncIterable[Any]) -> None:
    """Await a call (or drain a stream) that must fail with INVALID_ARGUMENT."""
    try:
        if isinstance(call, AsyncIterable):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        return
    raise AssertionError("the call succeeded; it should have been INVALID_ARGUMENT")


async def make_calls(address: str, run: ActiveRun) -> None:
    """The known traffic the tests count."""
    ref = common_pb2.RunRef(run=run.metadata.name)
    async with grpc.aio.insecure_channel(address) as channel:
        acq = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
        for _ in range(LIST_METHODS_CALLS):
            await acq.ListMethods(acquisition_pb2.ListMethodsRequest(), timeout=30)
        other_run = common_pb2.RunRef(run="another-run")
        await expect_invalid(
            acq.Select(acquisition_pb2.SelectRequest(run=other_run, method="random"), timeout=30)
        )
        gen = generation_pb2_grpc.GenerationServiceStub(channel)
        prompts = [item_to_msg(it) for it in items(PROMPTS_STREAMED)]
        stream = gen.Generate(generation_pb2.GenerateRequest(run=ref, prompts=prompts), timeout=60)
        assert len([reply async for reply in stream]) == PROMPTS_STREAMED
        await expect_invalid(gen.Generate(generation_pb2.GenerateRequest(run=ref), timeout=30))
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(HEALTH_CHECKS):
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        asks = [reflection_pb2.ServerReflectionRequest(list_services="")] * REFLECTION_REQUESTS
        answers = refl.ServerReflectionInfo(iter(asks), timeout=30)
        assert len([a async for a in answers]) == REFLECTION_REQUESTS


async def live_scrape(state_dir: Path) -> LiveScrape:
    """Start the server and a driver endpoint, make the calls, scrape both, stop."""
    run = load_activerun(QUICKSTART, ["spec.responses.source=precomputed"])
    metrics = ServiceMetrics()
    ctx = ServiceContext(run, QUICKSTART.parent, state_dir / "state", state_dir / "ckpt", metrics)
    registrars = [build_registrar("generation", ctx), build_registrar("acquisition", ctx)]
    config = ServerConfig(metrics_port=free_port())
    server = await start_server(config, registrars, metrics)
    driver, driver_port = DriverMetrics(run), free_port()
    driver.serve(driver_port)
    try:
        await make_calls(f"127.0.0.1:{server.port}", run)
        driver.observe_round(DRIVER_ROW)
        service_text = await asyncio.to_thread(scrape, config.metrics_port)
        driver_text = await asyncio.to_thread(scrape, driver_port)
    finally:
        driver.close()
        await server.stop()
    return LiveScrape(service_text, driver_text, run)
