"""The driver's calls within a time budget (issue 8, item 3): a service that is down is waited
for (``wait_for_ready``) and retried until the budget is spent, then the failure is one line
naming the role, the address, the last status and ``--resume``; ``prefloop run --connect``
exits 1 with that line and no traceback; the driver reports each role SERVING first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from rpc_helpers import QUICKSTART, SHRINK, free_port

from prefloop.rpc.clients import ROLE_NAMES, ClientConfig, connect_roles
from prefloop.rpc.retry import CallKwargs, RetryingCaller, RoleCallError, check_serving
from prefloop.spec import load_activerun


def health_server(port: int) -> grpc.Server:
    """A plain gRPC server with only the health service, SERVING."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


@pytest.fixture
def late_server() -> Iterator[tuple[int, threading.Event]]:
    """A port whose server starts 2 s after the test begins (a service restarting)."""
    port = free_port()
    started = threading.Event()
    holder: list[grpc.Server] = []

    def start_later() -> None:
        time.sleep(2.0)
        holder.append(health_server(port))
        started.set()

    thread = threading.Thread(target=start_later, daemon=True)
    thread.start()
    yield port, started
    thread.join(10)
    for server in holder:
        server.stop(0)


def test_call_gives_up_after_the_budget_with_a_one_line_error() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens here
    config = ClientConfig(retry_timeout_seconds=1.5, backoff_initial=0.1, backoff_max=0.5)
    with grpc.insecure_channel(address) as channel:
        caller = RetryingCaller("reward", config, address)
        start = time.monotonic()
        with pytest.raises(RoleCallError) as err:
            caller.call("Score", lambda kw: check_serving(channel, kw))
        waited = time.monotonic() - start
    e = err.value
    assert e.gave_up and e.code == grpc.StatusCode.UNAVAILABLE
    assert waited >= 1.5  # it kept trying for the whole budget, not a fixed count
    text = str(e)
    assert "\n" not in text
    for part in ("reward service", address, "Score", "UNAVAILABLE", "--resume"):
        assert part in text, text
    assert "Connection refused" in text or "failed to connect" in text  # the real reason


def test_call_waits_for_a_service_that_starts_late(
    late_server: tuple[int, threading.Event],
) -> None:
    port, started = late_server
    address = f"127.0.0.1:{port}"
    config = ClientConfig(retry_timeout_seconds=60.0)
    calls: list[CallKwargs] = []

    def probe(kw: CallKwargs) -> None:
        calls.append(kw)
        check_serving(channel, kw)

    with grpc.insecure_channel(address) as channel:
        RetryingCaller("judge", config, address).call("Judge", probe)
    assert started.is_set()
    assert calls and all(kw["wait_for_ready"] for kw in calls)


def test_a_status_retrying_cannot_fix_fails_at_once() -> None:
    port = free_port()
    server = health_server(port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            caller = RetryingCaller("judge", ClientConfig(retry_timeout_seconds=30.0))
            with pytest.raises(RoleCallError) as err:
                caller.call(
                    "Check",
                    lambda kw: stub.Check(health_pb2.HealthCheckRequest(service="nope"), **kw),
                )
    finally:
        server.stop(0)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert not err.value.gave_up and err.value.attempts == 1 and caller.retries == 0


def test_the_driver_reports_every_role_serving_before_round_one() -> None:
    port = free_port()
    server = health_server(port)
    run = load_activerun(QUICKSTART, SHRINK)
    lines: list[str] = []
    connected = connect_roles(run, {r: f"127.0.0.1:{port}" for r in ROLE_NAMES})
    try:
        connected.wait_until_serving(lines.append)
    finally:
        connected.close()
        server.stop(0)
    serving = [line for line in lines if "SERVING" in line]
    assert [line.split()[0] for line in serving] == list(ROLE_NAMES)


def test_prefloop_run_exits_1_with_one_line_when_a_role_never_comes_back(
    tmp_path: Path,
) -> None:
    dead = {r: f"127.0.0.1:{free_port()}" for r in ROLE_NAMES}
    connect = ",".join(f"{r}={a}" for r, a in dead.items())
    cmd = [sys.executable, "-m", "prefloop.cli", "run", str(QUICKSTART), "--output",
           str(tmp_path / "run"), "--connect", connect, "--retry-timeout-seconds", "2"]  # fmt: skip
    for o in SHRINK:
        cmd += ["--set", o]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("prefloop: error:")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    for part in ("generation service", dead["generation"], "UNAVAILABLE", "--resume"):
        assert part in line, line
