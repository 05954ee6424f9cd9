"""A real SIGTERM to ``prefloop serve``: the server stops cleanly (exit 0, no traceback)."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rpc_helpers import ServiceProcess, free_port, wait_serving


def test_sigterm_stops_the_server_gracefully(tmp_path: Path) -> None:
    svc = ServiceProcess("acquisition", free_port(), tmp_path / "cache", tmp_path)
    svc.start()
    try:
        wait_serving(svc.address)
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(30) == 0
    finally:
        svc.terminate()
    log = (tmp_path / "acquisition-0.log").read_text()
    assert "Traceback" not in log
    with grpc.insecure_channel(svc.address) as ch, pytest.raises(grpc.RpcError) as err:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
