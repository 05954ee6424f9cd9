"""The shrunk quickstart through five ``prefloop serve`` subprocesses equals the embedded run;
SIGKILLing the judge or the trainer mid-run changes nothing (the client retries, the judge
never judges a pair twice, no label is lost)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rpc_helpers import QUICKSTART, ServiceProcess, free_port, shrunk_run, wait_serving

from prefloop.engine.runner import execute
from prefloop.rpc.clients import ROLE_NAMES, ClientConfig, connect_roles

pytestmark = pytest.mark.slow


@pytest.fixture
def services(tmp_path: Path, reference: Any) -> Iterator[dict[str, ServiceProcess]]:
    procs = {r: ServiceProcess(r, free_port(), reference.cache_dir, tmp_path) for r in ROLE_NAMES}
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
) -> Any:
    run = shrunk_run(cache_dir)
    connected = connect_roles(
        run,
        {r: p.address for r, p in procs.items()},
        ClientConfig(backoff_initial=0.2, backoff_max=2.0, max_attempts=60),
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
            )
    finally:
        connected.close()
    return connected


def judge_log_lines(base: Path) -> list[dict[str, Any]]:
    path = base / "state" / "judge" / "judge-quickstart.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_five_services_reproduce_the_embedded_dataset(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    run_connected(services, reference.cache_dir, tmp_path / "svc")
    assert (tmp_path / "svc" / "dataset.jsonl").read_text() == reference.dataset
    assert reference.rows > 0
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows


class KillOnCall:
    """Wraps a role method: before call number ``at`` it SIGKILLs the service and restarts it,
    so that call meets a dead server and must be retried against the restarted one."""

    def __init__(self, role: Any, method: str, proc: ServiceProcess, at: int) -> None:
        self.inner = getattr(role, method)
        self.proc = proc
        self.at = at
        self.calls = 0
        setattr(role, method, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            self.proc.kill()
            self.proc.start()
        return self.inner(*args, **kwargs)


def test_judge_sigkill_mid_run_changes_nothing(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    killers: list[KillOnCall] = []

    def wrap(roles: Any) -> None:
        killers.append(KillOnCall(roles.judge, "judge", services["judge"], at=3))

    connected = run_connected(services, reference.cache_dir, tmp_path / "svc", wrap)
    assert services["judge"].starts == 2 and killers[0].calls >= 3
    assert connected.judge.caller.retries >= 1
    assert (tmp_path / "svc" / "dataset.jsonl").read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    pair_ids = [v["pair_id"] for v in verdicts]
    assert len(pair_ids) == len(set(pair_ids)) == reference.rows


def test_trainer_sigkill_mid_run_changes_nothing(
    services: dict[str, ServiceProcess], reference: Any, tmp_path: Path
) -> None:
    killers: list[KillOnCall] = []

    def wrap(roles: Any) -> None:
        killers.append(KillOnCall(roles.trainer, "train", services["trainer"], at=3))

    connected = run_connected(services, reference.cache_dir, tmp_path / "svc", wrap)
    assert services["trainer"].starts == 2 and killers[0].calls >= 3
    assert connected.roles.trainer.caller.retries >= 1
    assert (tmp_path / "svc" / "dataset.jsonl").read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows
