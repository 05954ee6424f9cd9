"""Service mode with people as the judge: ``prefloop serve judge RUN.yaml --ui-port U --kafka``
(a real subprocess, a real Tansu broker) serves the labelling page and answers the engine's Judge
RPC when the labels are in. The test's "person" clicks the higher-scored response through HTTP:
the dataset rows equal the stored-score oracle's; every label is on the judgements topic the
moment it is given (before the round ends); the engine's Judge call outlives its deadline and
its retries join the waiting judgement (each pair asked of the people once, judged once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from _human_run import (
    choice_by_score,
    human_judge_spec,
    manifest,
    oracle_result,
    rows_without_judge,
    write_pool,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console

from prefloop.bus.base import topic_name
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.tansu import free_port, tansu_broker
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.runner import execute
from prefloop.rpc.clients import ClientConfig, JudgeClient
from prefloop.spec import load_activerun

pytestmark = pytest.mark.slow
ALICE = "alice-secret-token"


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[str]:
    with tansu_broker(log_path=tmp_path / "tansu.log") as bootstrap:
        yield bootstrap


def _wait_serving(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"judge service not serving: {log.read_text()}")


def _topic(bootstrap: str, run: str) -> list[Any]:
    bus = KafkaBus(bootstrap, client_id="prefloop-tests")
    try:
        return list(bus.read_all(topic_name(run, "judgements"), timeout_seconds=1.0))
    finally:
        bus.close()


def test_service_mode_person_by_score_gives_the_oracle_rows(
    repo_root: Path, tmp_path: Path, tokens_file: Path, human_feature_cache: Path, kafka: str
) -> None:
    pool = tmp_path / "pool.jsonl"
    scores = write_pool(repo_root, pool)
    oracle = oracle_result(tmp_path, pool, human_feature_cache, "svc")
    path = manifest(tmp_path, pool, human_feature_cache, human_judge_spec(tokens_file), "svc")
    run = load_activerun(path)

    port, ui_port = free_port(), free_port()
    log = tmp_path / "judge.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefloop.cli", "serve", "judge", str(path), "--port",
             str(port), "--ui-port", str(ui_port), "--kafka", kafka,
             "--state-dir", str(tmp_path / "state")],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        _wait_serving(address, proc, log)
        # the engine: local roles but the judge, a client of the service with a short deadline
        roles, _, _ = build_embedded_roles(run, tmp_path / "svc", path.parent)
        config = ClientConfig(deadlines={**ClientConfig().deadlines, "judge": 2.0})
        channel = grpc.insecure_channel(address)
        roles.judge = JudgeClient(run, channel, config, "human", address=address)
        results: list[Any] = []

        engine = threading.Thread(
            target=lambda: results.append(
                execute(run, output=str(tmp_path / "svc"), roles=roles, console=Console(quiet=True))
            ),
            daemon=True,
        )
        engine.start()

        ui = httpx.Client(
            base_url=f"http://127.0.0.1:{ui_port}",
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=30,
        )
        labelled: list[str] = []
        first_wait = True
        while engine.is_alive():
            nxt = ui.get("/api/next").json()
            pair = nxt["pair"]
            if pair is None:
                engine.join(0.05)
                continue
            if first_wait:  # outlive the engine's 2 s deadline: its retries must join the wait
                time.sleep(3.0)
                first_wait = False
            choice = choice_by_score(pair, scores)
            r = ui.post(
                "/api/label",
                data={"pair_id": pair["pair_id"], "choice": choice, "csrf": nxt["csrf"]},
            )
            assert r.status_code == 200, r.text
            labelled.append(pair["pair_id"])
            if len(labelled) == 1:  # on the topic the moment it is given, the round still open
                votes = [r.value for r in _topic(kafka, "svc") if r.value.get("record") == "vote"]
                assert [(v["pair_id"], v["annotator"], v["choice"]) for v in votes] == [
                    (pair["pair_id"], "alice", choice)
                ]
        engine.join(60)
        assert results, f"the run did not finish; judge log:\n{log.read_text()}"
        progress = ui.get("/api/progress").json()
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)

    human = results[0]
    assert rows_without_judge(human) == rows_without_judge(oracle)
    assert len(labelled) == len(human.rows) == 4
    assert roles.judge.caller.retries >= 1  # the deadline did expire
    assert progress["batch"] == human.state.round == 2  # each round asked the people once
    verdict_log = [
        json.loads(line)
        for line in (tmp_path / "state" / "judge-svc.jsonl").read_text().splitlines()
    ]
    assert sorted(v["pair_id"] for v in verdict_log) == sorted(labelled)
    records = _topic(kafka, "svc")
    votes = [r.value for r in records if r.value.get("record") == "vote"]
    verdicts = [r.value for r in records if "record" not in r.value]
    # one vote per label (the topic's partitions are keyed by prompt: no global order)
    assert sorted((v["pair_id"], v["event"], v["annotator"]) for v in votes) == sorted(
        (pid, "label", "alice") for pid in labelled
    )
    assert sorted({v["pair_id"] for v in verdicts}) == sorted(labelled)
