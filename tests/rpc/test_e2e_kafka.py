"""The shrunk quickstart through five ``prefloop serve --kafka`` subprocesses and a real Tansu
broker: the dataset equals the embedded run's, ``prefloop export --from-kafka`` rebuilds it from
the topics alone, the trainer trained on pairs it read from Kafka, and SIGKILLing the trainer and
the reward service mid-run changes nothing (no pair judged twice, no annotation lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import KillOnCall, judge_log_lines, run_connected, started_services

from prefloop.bus.base import topic_name
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.payloads import annotation_from_value, checkpoint_from_value
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file

pytestmark = pytest.mark.slow


def topic_records(bootstrap: str, kind: str) -> list[Any]:
    bus = KafkaBus(bootstrap, client_id="prefloop-tests")
    try:
        return list(bus.read_all(topic_name("quickstart", kind), timeout_seconds=1.0))
    finally:
        bus.close()


def assert_judged_once(base: Path, bootstrap: str, rows: int) -> None:
    verdicts = judge_log_lines(base)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == rows
    records = topic_records(bootstrap, "judgements")
    assert len({r.msg_id for r in records}) == rows  # copies after a restart share the id
    assert {r.value["pair_id"] for r in records} == {v["pair_id"] for v in verdicts}


def test_kafka_run_equals_embedded_and_export_rebuilds_it(
    reference: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    with started_services(reference.cache_dir, tmp_path, kafka_bootstrap) as procs:
        connected = run_connected(
            procs, reference.cache_dir, tmp_path / "svc", kafka=kafka_bootstrap
        )
    assert connected.roles.trainer.pairs_by_id  # type: ignore[attr-defined]
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    assert_judged_once(tmp_path, kafka_bootstrap, reference.rows)

    # every annotation carries what the trainer needs; one checkpoint per round, in order
    annotations = [
        annotation_from_value(r.value) for r in topic_records(kafka_bootstrap, "annotations")
    ]
    assert len({a.pair_id for a in annotations}) == reference.rows
    assert all(a.labelled_pair().pair_id == a.pair_id for a in annotations)
    versions = [
        checkpoint_from_value(r.value).version
        for r in topic_records(kafka_bootstrap, "checkpoints")
    ]
    rounds = len((tmp_path / "svc" / "metrics.jsonl").read_text().splitlines())
    assert sorted(set(versions)) == list(range(1, rounds + 1))
    for kind in ("completions", "scores", "selections"):
        assert topic_records(kafka_bootstrap, kind), kind

    out = tmp_path / "export"
    status = main(
        ["export", "--from-kafka", kafka_bootstrap, "--run", "quickstart", "--out", str(out),
         "--formats", "jsonl", "--idle-seconds", "1"]
    )  # fmt: skip
    assert status == 0
    assert dataset_file(out).read_text() == reference.dataset


@pytest.mark.long  # a restart scenario: make test-long (keeps make test < 15 min)
def test_kafka_run_survives_trainer_and_reward_sigkill(
    reference: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    killers: list[KillOnCall] = []
    with started_services(reference.cache_dir, tmp_path, kafka_bootstrap) as procs:

        def wrap(roles: Any) -> None:
            killers.append(KillOnCall(roles.trainer, "train", procs["trainer"], at=3))
            killers.append(KillOnCall(roles.reward, "score", procs["reward"], at=4))

        run_connected(procs, reference.cache_dir, tmp_path / "svc", wrap, kafka=kafka_bootstrap)
        assert procs["trainer"].starts == 2 and procs["reward"].starts == 2
    assert all(k.calls >= k.at for k in killers)
    assert all(k.met_dead_service for k in killers)  # yet every call succeeded
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    assert_judged_once(tmp_path, kafka_bootstrap, reference.rows)
