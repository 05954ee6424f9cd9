"""The shrunk quickstart through five ``prefloop serve`` subprocesses equals the embedded run;
SIGKILLing the judge or the trainer mid-run changes nothing (the client retries, the judge
never judges a pair twice, no label is lost)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import (
    KillOnCall,
    ServiceProcess,
    judge_log_lines,
    run_connected,
    started_services,
)

from prefloop.data.run_dataset import dataset_file

pytestmark = pytest.mark.slow


@pytest.fixture
def services(tmp_path: Path, reference: Any) -> Iterator[dict[str, ServiceProcess]]:
    with started_services(reference.cache_dir, tmp_path) as procs:
        yield procs


def test_five_services_reproduce_the_embedded_dataset(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    run_connected(services, reference.cache_dir, tmp_path / "svc")
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    assert reference.rows > 0
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows


def test_judge_sigkill_mid_run_changes_nothing(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    killers: list[KillOnCall] = []

    def wrap(roles: Any) -> None:
        killers.append(KillOnCall(roles.judge, "judge", services["judge"], at=3))

    run_connected(services, reference.cache_dir, tmp_path / "svc", wrap)
    assert services["judge"].starts == 2 and killers[0].calls >= 3
    assert killers[0].met_dead_service  # and the call still succeeded (wait_for_ready)
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    pair_ids = [v["pair_id"] for v in verdicts]
    assert len(pair_ids) == len(set(pair_ids)) == reference.rows


def test_trainer_sigkill_mid_run_changes_nothing(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    killers: list[KillOnCall] = []

    def wrap(roles: Any) -> None:
        killers.append(KillOnCall(roles.trainer, "train", services["trainer"], at=3))

    run_connected(services, reference.cache_dir, tmp_path / "svc", wrap)
    assert services["trainer"].starts == 2 and killers[0].calls >= 3
    assert killers[0].met_dead_service  # and the call still succeeded (wait_for_ready)
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows
