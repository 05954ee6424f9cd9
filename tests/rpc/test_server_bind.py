"""One port, one server; one state directory, one judge (issue 8, items 1 and 2).

gRPC shares a bound port with a second process by default (SO_REUSEPORT), so two judges, each
with its own verdict log, could serve one port and judge a pair twice. Servers now refuse the
second bind, and ``prefloop serve`` says so in one line with a non-zero exit; a judge started on
a state directory another judge holds says which directory and which pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rpc_helpers import (
    QUICKSTART,
    InProcessServer,
    LoopThread,
    context,
    free_port,
    overrides,
    shrunk_run,
)

from prefloop.rpc import acquisition_service, judge_service
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig, StartupError, start_server


def acquisition(metrics: ServiceMetrics) -> list[object]:
    return [acquisition_service.register(acquisition_service.AcquisitionServicer(metrics, "q"))]


def test_a_second_server_on_a_used_port_refuses_to_start() -> None:
    metrics = ServiceMetrics()
    first = InProcessServer(acquisition(metrics), metrics, ServerConfig())  # type: ignore[arg-type]
    loop = LoopThread()
    try:
        second = ServiceMetrics()
        with pytest.raises(StartupError, match=rf"^address in use: port {first.port} on "):
            loop.run(start_server(ServerConfig(port=first.port), acquisition(second), second))  # type: ignore[arg-type]
    finally:
        loop.close()
        first.stop()


def serve_judge(port: int, state_dir: Path, cache: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "prefloop.cli", "serve", "judge", str(QUICKSTART),
           "--port", str(port), "--state-dir", str(state_dir)]  # fmt: skip
    for o in overrides(cache):
        cmd += ["--set", o]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )


def test_prefloop_serve_judge_refuses_a_used_port_and_a_held_state_dir(tmp_path: Path) -> None:
    """A judge serves (in this process); two more ``prefloop serve judge`` try its port / its
    state directory: each exits non-zero with one line naming what is in the way."""
    run = shrunk_run(tmp_path / "cache")
    metrics = ServiceMetrics()
    ctx = context(run, tmp_path, metrics)
    holder = judge_service.JudgeServicer(ctx)
    srv = InProcessServer([judge_service.register(holder)], metrics, ServerConfig())
    try:
        same_port = serve_judge(srv.port, tmp_path / "other-state", tmp_path / "cache")
        same_state = serve_judge(free_port(), ctx.state_dir, tmp_path / "cache")
        port_err = same_port.communicate(timeout=120)[1]
        state_err = same_state.communicate(timeout=120)[1]
    finally:
        srv.stop()
        holder.close()
    assert same_port.returncode == 2, port_err
    assert f"prefloop serve judge: error: address in use: port {srv.port} on 127.0.0.1" in port_err
    assert same_state.returncode == 2, state_err
    assert "prefloop serve judge: error: judge state dir" in state_err
    assert str(ctx.state_dir) in state_err and f"pid {os.getpid()}" in state_err
    assert "Traceback" not in port_err + state_err


def test_the_default_bind_address_is_stated(capsys: pytest.CaptureFixture[str]) -> None:
    from prefloop.cli import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    assert "default 127.0.0.1" in " ".join(capsys.readouterr().out.split())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "services.md").read_text()
    assert "`--host` (bind address; default `127.0.0.1`, loopback only" in docs
    assert ServerConfig().host == "127.0.0.1"
