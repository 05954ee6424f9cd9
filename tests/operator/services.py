"""The five role services of a run on one real gRPC server on loopback, in the test process:
what an ActiveRun whose roles are all ``endpoint:`` points at (shared services already running).

The judge counts every pair its oracle really judges (a pair answered from the verdict log is
not judged again), and the trainer can run a hook when a Train call arrives (the test kills the
driver there: after the round's judgements, before its checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prefloop.bus.kafka_bus import KafkaBus
from prefloop.engine.build import build_judge
from prefloop.judge.base import Judgement, JudgeRequest
from prefloop.rpc import judge_service, trainer_service
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.serve import build_registrar
from prefloop.rpc.server import ServerConfig, start_server
from prefloop.spec import ActiveRun
from prefloop.spec_cluster import SERVICE_ROLES

T = TypeVar("T")


class CountingJudge:
    """The run's judge, recording the id of every pair it is asked to label."""

    def __init__(self, run: ActiveRun) -> None:
        self.inner = build_judge(run)
        self.pairs: list[str] = []
        self._lock = threading.Lock()

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        with self._lock:
            self.pairs.extend(r.pair_id for r in requests)
        verdicts: list[Judgement] = self.inner.judge(requests)
        return verdicts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class HookedTrainer(trainer_service.TrainerServicer):
    """A trainer service that calls ``hook`` (once) when a Train call arrives."""

    hook: Callable[[], None] | None = None

    async def Train(self, request: Any, context: Any) -> Any:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return await super().Train(request, context)


class _Loop:
    """An asyncio loop in a daemon thread (the servers are grpc.aio)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class RoleServices:
    """Handles on the running services: address, the counting judge, the hooked trainer."""

    def __init__(self, address: str, judge: CountingJudge, trainer: HookedTrainer) -> None:
        self.address = address
        self.judge = judge
        self.trainer = trainer


@contextlib.contextmanager
def role_services(
    run: ActiveRun, data_dir: Path, state: Path, kafka: str
) -> Iterator[RoleServices]:
    """All five roles of ``run`` on one loopback server; relative data paths resolve in
    ``data_dir`` (the run's volume), durable state goes under ``state``."""
    metrics = ServiceMetrics()
    buses = [KafkaBus(kafka, client_id=f"prefloop-test-{role}") for role in SERVICE_ROLES]
    contexts = {
        role: ServiceContext(run, data_dir, state / role, state / "checkpoints", metrics, bus)
        for role, bus in zip(SERVICE_ROLES, buses, strict=True)
    }
    for ctx in contexts.values():
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    judge = CountingJudge(run)
    judge_servicer = judge_service.JudgeServicer(contexts["judge"], judge=judge)  # type: ignore[arg-type]
    trainer = HookedTrainer(contexts["trainer"])
    registrars = [
        judge_service.register(judge_servicer),
        trainer_service.register(trainer),
        *(build_registrar(r, contexts[r]) for r in ("generation", "reward", "acquisition")),
    ]
    loop = _Loop()
    running = loop.run(start_server(ServerConfig(grace_seconds=2), registrars, metrics))
    try:
        yield RoleServices(f"127.0.0.1:{running.port}", judge, trainer)
    finally:
        loop.run(running.stop())
        loop.close()
        judge_servicer.close()
        for bus in buses:
            bus.close()
