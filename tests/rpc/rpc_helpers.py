"""Shared helpers of the rpc tests: the shrunk quickstart, free ports, in-process servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

from prefloop.data.records import PromptItem, Response
from prefloop.engine.runner import execute
from prefloop.rpc.clients import ROLE_NAMES, ClientConfig, ConnectedRoles, connect_roles
from prefloop.rpc.common import ServiceContext
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import Registrar, RunningServer, ServerConfig, start_server
from prefloop.spec import ActiveRun, load_activerun

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
SHRINK = [
    "spec.prompts.limit=24",
    "spec.evaluation.shadowRandom=false",
    "spec.batchSize=4",
    "spec.rewardModel.embedder.maxLengthTokens=64",
    "spec.rewardModel.head.numHeads=4",
]
T = TypeVar("T")


def overrides(cache_dir: Path) -> list[str]:
    """The shrunk quickstart with a shared feature cache."""
    return [*SHRINK, f"spec.rewardModel.embedder.cacheDir={cache_dir}"]


def shrunk_run(cache_dir: Path, extra: tuple[str, ...] = ()) -> ActiveRun:
    """The shrunk quickstart, then ``extra`` overrides (e.g. a policy in the loop)."""
    return load_activerun(QUICKSTART, [*overrides(cache_dir), *extra])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop in a daemon thread, so sync gRPC clients can call aio servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class InProcessServer:
    """A real grpc.aio server on loopback, with its own metrics."""

    def __init__(
        self, registrars: list[Registrar], metrics: ServiceMetrics, config: ServerConfig
    ) -> None:
        self.loop = LoopThread()
        self.running: RunningServer = self.loop.run(start_server(config, registrars, metrics))
        self.port = self.running.port
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.run(self.running.stop())
        self.loop.close()


def context(run: ActiveRun, tmp: Path, metrics: ServiceMetrics | None = None) -> ServiceContext:
    return ServiceContext(
        run, QUICKSTART.parent, tmp / "state", tmp / "ckpt", metrics or ServiceMetrics()
    )


def wait_serving(address: str, timeout: float = 240.0) -> None:
    """Block until the server's health check says SERVING (five processes importing torch on a
    busy 2-core machine have taken over 90 s; a healthy start returns at once)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not serving after {timeout}s")
            time.sleep(0.1)


class ServiceProcess:
    """``prefloop serve <role>`` as a subprocess on a fixed port (restartable)."""

    def __init__(
        self,
        role: str,
        port: int,
        cache_dir: Path,
        base: Path,
        kafka: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.role = role
        self.extra = extra
        self.port = port
        self.cache_dir = cache_dir
        self.base = base
        self.kafka = kafka
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "prefloop.cli", "serve", self.role, str(QUICKSTART),
            "--port", str(self.port),
            "--state-dir", str(self.base / "state" / self.role),
            "--checkpoint-dir", str(self.base / "ckpt"),
            "--grace", "5",
        ]  # fmt: skip
        for o in [*overrides(self.cache_dir), *self.extra]:
            cmd += ["--set", o]
        if self.kafka:
            cmd += ["--kafka", self.kafka]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        log = (self.base / f"{self.role}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def started_services(
    cache_dir: Path, base: Path, kafka: str | None = None, extra: tuple[str, ...] = ()
) -> Iterator[dict[str, ServiceProcess]]:
    """The five ``prefloop serve`` subprocesses, serving; terminated on exit."""
    procs = {r: ServiceProcess(r, free_port(), cache_dir, base, kafka, extra) for r in ROLE_NAMES}
    try:
        for p in procs.values():
            p.start()
        for p in procs.values():
            wait_serving(p.address)
        yield procs
    finally:
        for p in procs.values():
            p.terminate()


def run_connected(
    procs: dict[str, ServiceProcess],
    cache_dir: Path,
    out: Path,
    wrap: Callable[[Any], None] | None = None,
    kafka: str | None = None,
    config: ClientConfig | None = None,
    extra: tuple[str, ...] = (),
    run: ActiveRun | None = None,
) -> ConnectedRoles:
    """The shrunk quickstart (or ``run``) driven through the services (and the data plane,
    with ``kafka``); ``config`` defaults to short backoffs (the CLI's defaults are the
    ClientConfig ones)."""
    run = run or shrunk_run(cache_dir, extra)
    endpoints = {r: p.address for r, p in procs.items()}
    if kafka:
        endpoints["kafka"] = kafka
    connected = connect_roles(
        run, endpoints, config or ClientConfig(backoff_initial=0.2, backoff_max=2.0)
    )
    if wrap is not None:
        wrap(connected.roles)
    try:
        with open(os.devnull, "w") as sink:
            execute(
                run,
                manifest_dir=QUICKSTART.parent,
                output=str(out),
                roles=connected.roles,
                console=Console(file=sink),
                publisher=connected.publisher,
            )
    finally:
        connected.close()
    return connected


def judge_log_lines(base: Path) -> list[dict[str, Any]]:
    """The judge service's verdict log (one line per pair it ever judged)."""
    path = base / "state" / "judge" / "judge-quickstart.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class KillOnCall:
    """Wraps a role method: before call number ``at`` it SIGKILLs the service and restarts it,
    so that call meets a dead server and must wait for (or retry against) the restarted one.
    ``met_dead_service``: nothing listened on the port when that call started."""

    def __init__(self, role: Any, method: str, proc: ServiceProcess, at: int) -> None:
        self.inner = getattr(role, method)
        self.proc = proc
        self.at = at
        self.calls = 0
        self.met_dead_service = False
        setattr(role, method, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            self.proc.kill()
            self.proc.start()
            try:  # a freshly started Python process cannot listen within milliseconds
                socket.create_connection(("127.0.0.1", self.proc.port), timeout=0.2).close()
            except OSError:
                self.met_dead_service = True
        return self.inner(*args, **kwargs)


def item(pid: str = "p1", n: int = 3) -> PromptItem:
    return PromptItem(
        pid, "What is 2+2?", tuple(Response(f"m{i}", f"answer {i}", 0.1 * i) for i in range(n))
    )


def expect(code: grpc.StatusCode, words: list[str], fn: Any, *args: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        r = fn(*args, timeout=30)
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            list(r)
    assert err.value.code() == code, err.value.details()
    for w in words:
        assert w in err.value.details(), err.value.details()


def quickstart_items() -> list[PromptItem]:
    """The shrunk quickstart's prompts with their stored responses (what the judge holds)."""
    from prefloop.engine.runner import load_pool

    pool, heldout = load_pool(load_activerun(QUICKSTART, SHRINK), QUICKSTART.parent)
    return [*pool, *heldout]


def judge_pair(it: PromptItem, i: int, j: int, run: str = "quickstart") -> Any:
    """The PairToJudge the engine sends for responses i and j of ``it`` (with its real id)."""
    from prefloop.engine.round_engine import pair_id
    from prefloop.judge.base import JudgeRequest
    from prefloop.rpc.convert import judge_request_to_msg

    a, b = it.responses[i], it.responses[j]
    return judge_request_to_msg(JudgeRequest(pair_id(run, it, a, b), it, a, b))
