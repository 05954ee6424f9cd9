"""Where the metrics live: binding rules and the driver's endpoint on a real embedded run.

- ``prefloop serve`` and ``prefloop run`` bind loopback unless told otherwise (the CLI says so
  in ``--help``); with ``--host 0.0.0.0`` (what the chart and the operator pass) both the gRPC
  port and the metrics port answer on the machine's other addresses too.
- ``prefloop run --metrics-port`` serves the loop gauges, and after the run they equal what the
  run wrote into its summary and metrics files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest
from monitoring_helpers import QUICKSTART, free_port, scrape
from prometheus_client.parser import text_string_to_metric_families

from prefloop.cli import _run_arguments, _serve_arguments
from prefloop.cli import main as prefloop_main
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig, start_server

TINY_RUN = [
    "spec.prompts.limit=12",
    "spec.evaluation.shadowRandom=false",
    "spec.batchSize=4",
    "spec.budget.maxRounds=2",
    "spec.rewardModel.head.numHeads=2",
    "spec.rewardModel.embedder.maxLengthTokens=32",
    "spec.trainer.epochsPerRound=1",
    "spec.trainer.maxStepsPerRound=5",
]


def outward_address() -> str:
    """This machine's address on its default route (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("198.51.100.1", 9))  # TEST-NET-2: any unicast address with a route
        return str(s.getsockname()[0])


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=3):
        return True
    return False


def test_cli_defaults_to_loopback_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    serve, run = argparse.ArgumentParser(), argparse.ArgumentParser()
    _serve_arguments(serve)
    _run_arguments(run)
    assert serve.parse_args(["judge", "run.yaml", "--port", "1"]).host == "127.0.0.1"
    assert run.parse_args(["run.yaml"]).metrics_host == "127.0.0.1"
    for command, option in [("serve", "--host"), ("run", "--metrics-host")]:
        with pytest.raises(SystemExit):
            prefloop_main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert f"{option} " in help_text
        assert "default 127.0.0.1: loopback only" in help_text and "pass 0.0.0.0" in help_text


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_host_decides_who_reaches_grpc_and_metrics(host: str) -> None:
    other = outward_address()
    assert not other.startswith("127."), "the test needs a non-loopback address"

    async def probe() -> tuple[bool, bool, str]:
        metrics = ServiceMetrics()
        server = await start_server(ServerConfig(host=host, metrics_port=free_port()), [], metrics)
        try:
            metrics_port = metrics._http.server_address[1] if metrics._http else 0
            grpc_open = await asyncio.to_thread(reachable, other, server.port)
            metrics_open = await asyncio.to_thread(reachable, other, metrics_port)
            text = await asyncio.to_thread(scrape, metrics_port)
        finally:
            await server.stop()
        return grpc_open, metrics_open, text

    grpc_open, metrics_open, text = asyncio.run(probe())
    assert grpc_open == metrics_open == (host == "0.0.0.0")
    assert "prefloop_build_info" in text  # loopback always works


def gauges(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("prefloop_run_") and "le" not in s.labels
    }


def test_prefloop_run_serves_the_loop_gauges(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "run"
    args = ["run", str(QUICKSTART), "--output", str(out), "--metrics-port", str(port)]
    for override in TINY_RUN:
        args += ["--set", override]
    assert prefloop_main(args) == 0
    got = gauges(scrape(port))  # the endpoint outlives the loop: the final state
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert got["prefloop_run_round"] == len(rows) == 2
    assert got["prefloop_run_finished"] == 1
    assert got["prefloop_run_annotations_used"] == summary["annotations_used"] > 0
    assert got["prefloop_run_annotations_budget"] == 80
    assert got["prefloop_run_reward_model_version"] == rows[-1]["model_version"]
    assert got["prefloop_run_heldout_accuracy_ratio"] == pytest.approx(rows[-1]["heldout_accuracy"])
    assert got["prefloop_run_round_duration_seconds_count"] == 2
