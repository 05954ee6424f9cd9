"""Restarts production inflicts (issue 8, items 3 and 4), end to end on real processes:

- a role service SIGKILLed and restarted only a minute later (a model service reloading on a
  busy machine): the driver, with its default settings, waits and the run completes with
  exactly the embedded dataset;
- the broker SIGKILLed mid-run and restarted on the same port with durable storage: the run
  completes, and ``prefloop export --from-kafka --strict`` rebuilds exactly the same dataset;
- an export whose topic lacks rows the run recorded warns, and fails with ``--strict``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import ServiceProcess, judge_log_lines, run_connected, started_services

from prefloop.bus.broker import DurableBroker
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.publisher import RunPublisher
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.rpc.clients import ClientConfig

RESTART_AFTER_SECONDS = 60.0
"""Longer than the old client's whole retry schedule (12 attempts, ~43 s)."""


class KillRestartLater:
    """Wraps a role method: before call number ``at`` it runs ``kill`` and schedules
    ``restart`` ``delay`` seconds later; that call must wait for the restarted service."""

    def __init__(
        self,
        role: Any,
        method: str,
        kill: Callable[[], None],
        restart: Callable[[], None],
        *,
        at: int,
        delay: float,
    ) -> None:
        self.inner = getattr(role, method)
        self.kill, self.restart = kill, restart
        self.at, self.delay = at, delay
        self.calls = 0
        self.timer: threading.Timer | None = None
        self.recovery_seconds = float("nan")
        """From the kill to the end of the call that met the dead service."""
        setattr(role, method, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls != self.at:
            return self.inner(*args, **kwargs)
        self.kill()
        killed = time.monotonic()
        self.timer = threading.Timer(self.delay, self.restart)
        self.timer.start()
        out = self.inner(*args, **kwargs)
        self.recovery_seconds = time.monotonic() - killed
        return out


@pytest.mark.slow
@pytest.mark.long
def test_a_role_back_only_a_minute_after_a_kill_changes_nothing(
    reference: Any, tmp_path: Path
) -> None:
    killers: list[KillRestartLater] = []
    with started_services(reference.cache_dir, tmp_path) as procs:
        reward: ServiceProcess = procs["reward"]

        def wrap(roles: Any) -> None:
            killers.append(
                KillRestartLater(
                    roles.reward,
                    "score",
                    reward.kill,
                    reward.start,
                    at=2,
                    delay=RESTART_AFTER_SECONDS,
                )
            )

        connected = run_connected(
            procs, reference.cache_dir, tmp_path / "svc", wrap, config=ClientConfig()
        )
    killer = killers[0]
    assert reward.starts == 2 and killer.calls >= 2
    assert killer.recovery_seconds >= RESTART_AFTER_SECONDS  # it really waited that long
    assert connected.roles.reward.caller.address == reward.address  # type: ignore[attr-defined]
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows


@pytest.mark.slow
@pytest.mark.long
def test_broker_restart_mid_run_loses_nothing_with_durable_storage(
    reference: Any, tmp_path: Path
) -> None:
    with DurableBroker(tmp_path / "broker") as broker:
        killers: list[KillRestartLater] = []
        with started_services(reference.cache_dir, tmp_path, broker.bootstrap) as procs:

            def wrap(roles: Any) -> None:
                killers.append(
                    KillRestartLater(
                        roles.trainer,
                        "train",
                        broker.kill_broker,
                        broker.start_broker,
                        at=3,
                        delay=3.0,
                    )
                )

            run_connected(procs, reference.cache_dir, tmp_path / "svc", wrap, broker.bootstrap)
        assert broker.broker_starts == 2 and killers[0].calls >= 3
        out = tmp_path / "export"
        status = main(
            [
                "export",
                "--from-kafka",
                broker.bootstrap,
                "--run",
                "quickstart",
                "--out",
                str(out),
                "--formats",
                "jsonl",
                "--idle-seconds",
                "1",
                "--run-dir",
                str(tmp_path / "svc"),
                "--strict",
            ]
        )
    assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
    assert status == 0
    assert dataset_file(out).read_text() == reference.dataset
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == reference.rows


def test_export_with_missing_rows_warns_and_strict_fails(
    reference: Any, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = reference.cache_dir.parent / "embedded"
    rows = read_dataset(dataset_file(run_dir))
    kept = rows[: len(rows) // 2]  # what a broker that lost the rest would still hold
    bus = KafkaBus(kafka_bootstrap, client_id="export-check-test")
    try:
        publisher = RunPublisher(bus, "quickstart")
        for round_, group in groupby(kept, key=lambda r: r["round"]):
            publisher.annotations(round_, list(group))
    finally:
        bus.close()
    args = ["export", "--from-kafka", kafka_bootstrap, "--run", "quickstart", "--formats",
            "jsonl", "--idle-seconds", "1", "--run-dir", str(run_dir)]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "lenient")]) == 0
    warning = capsys.readouterr().err
    missing = len(rows) - len(kept)
    assert f"{missing} of the {len(rows)} rows" in warning and "durable" in warning
    assert len(read_dataset(dataset_file(tmp_path / "lenient"))) == len(kept)  # still written

    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert "incomplete" in capsys.readouterr().err
