"""The same prompts-only run through ``prefloop serve generation`` and ``prefloop serve judge``
(live pool endpoints, rubric judge) gives the embedded run's dataset, byte for byte, and pays
for the same judgements."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from live_judge_helpers import CountingJudge, live_manifest, live_servers
from rich.console import Console

from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.runner import execute
from prefloop.rpc.clients import ClientConfig, GenerationClient, JudgeClient, open_channel
from prefloop.rpc.retry import wait_until_serving
from prefloop.spec import load_activerun


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(role: str, manifest: Path, base: Path, metrics_port: int = 0) -> Iterator[str]:
    """``prefloop serve <role>`` as a subprocess; yields its address."""
    port = free_port()
    log = base / f"{role}.log"
    cmd = [
        sys.executable, "-m", "prefloop.cli", "serve", role, str(manifest),
        "--port", str(port),
        "--state-dir", str(base / "state" / role),
        "--checkpoint-dir", str(base / "ckpt"),
        "--grace", "2",
        "--metrics-port", str(metrics_port),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    address = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(
                {role: (address, channel)}, ClientConfig(retry_timeout_seconds=300, backoff_max=1.0)
            )
        assert proc.poll() is None, log.read_text()
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_service_mode_equals_embedded_with_live_backends(tmp_path: Path) -> None:
    judge = CountingJudge()
    with live_servers(judge) as (pool, judge_server):
        manifest = live_manifest(
            tmp_path, pool.base_url, judge_server.base_url, models=3, pairsPerPrompt=2
        )
        assert main(["run", str(manifest), "--output", str(tmp_path / "embedded")]) == 0
        paid_embedded = judge.total

        run = load_activerun(manifest)
        base = tmp_path / "services"
        base.mkdir()
        metrics_port = free_port()
        with (
            serving("generation", manifest, base) as gen,
            serving("judge", manifest, base, metrics_port) as jdg,
        ):
            roles, _, _ = build_embedded_roles(run, base / "svc", manifest.parent)
            config = ClientConfig(backoff_initial=0.2, backoff_max=2.0)
            channels = [open_channel(gen, config), open_channel(jdg, config)]
            roles.generation = GenerationClient(run, channels[0], config, gen)
            roles.judge = JudgeClient(run, channels[1], config, roles.judge.name, None, jdg)
            try:
                with open(os.devnull, "w") as sink:
                    execute(
                        run,
                        manifest_dir=manifest.parent,
                        output=str(base / "svc"),
                        roles=roles,
                        console=Console(file=sink),
                    )
            finally:
                for channel in channels:
                    channel.close()
            scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        paid_services = judge.total - paid_embedded
    embedded = dataset_file(tmp_path / "embedded").read_text()
    assert embedded and dataset_file(base / "svc").read_text() == embedded
    assert paid_services == paid_embedded  # the same judgements, each paid once per mode
    assert set(judge.completed.values()) == {2}
    verdicts = (base / "state" / "judge" / "judge-live.jsonl").read_text().splitlines()
    assert len(verdicts) == len(embedded.splitlines())
    assert list((base / "state" / "judge" / "judge-cache-live").glob("shard-*.jsonl"))
    metrics, alone = (
        [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (base / "svc", tmp_path / "embedded")
    )
    for name in ("judge_calls", "judge_cache_hits", "judge_cost", "generation_cost", "cost_total"):
        assert [m[name] for m in metrics] == [m[name] for m in alone], name
    tokens = sum(m["judge_prompt_tokens"] + m["judge_completion_tokens"] for m in metrics)
    assert tokens > 0 and sum(m["judge_calls"] for m in metrics) == paid_services
    (line,) = [
        x for x in scraped.decode().splitlines() if x.startswith("prefloop_judge_tokens_total")
    ]
    assert float(line.split()[-1]) == tokens
