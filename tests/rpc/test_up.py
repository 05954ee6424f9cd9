"""``prefloop up RUN.yaml --broker`` (issue 8, item 6): it starts the five role services and a
durable broker as child processes, says each is SERVING, prints the ``--connect`` string; a run
through that string gives the embedded dataset (and so does the export from its broker); SIGTERM
stops every child (no orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rpc_helpers import QUICKSTART, overrides, shrunk_run

from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.engine.runner import execute
from prefloop.rpc.clients import ROLE_NAMES, connect_roles, parse_connect

pytestmark = [pytest.mark.slow, pytest.mark.long]


def child_pids(pid: int) -> set[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(c) for c in text)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_serves_a_run_and_sigterm_stops_every_child(reference: Any, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "prefloop.cli", "up", str(QUICKSTART), "--broker",
           "--broker-port", "0", "--port-base", "0", "--state-dir", str(tmp_path / "state"),
           "--grace", "2"]  # fmt: skip
    for o in overrides(reference.cache_dir):
        cmd += ["--set", o]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    err_log = tmp_path / "up.err"
    with err_log.open("w") as err:
        up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert up.stdout is not None
        connect = up.stdout.readline().strip()
        assert connect, err_log.read_text()
        endpoints = parse_connect(connect)
        assert set(endpoints) == {*ROLE_NAMES, "kafka"}
        serving = [line for line in err_log.read_text().splitlines() if "SERVING (" in line]
        assert [line.split()[0] for line in serving] == list(ROLE_NAMES)
        children = child_pids(up.pid)
        assert len(children) == 7  # five services, the broker and its object store

        run = shrunk_run(reference.cache_dir)
        connected = connect_roles(run, endpoints)
        try:
            with open(os.devnull, "w") as sink:
                execute(
                    run,
                    manifest_dir=QUICKSTART.parent,
                    output=str(tmp_path / "svc"),
                    roles=connected.roles,
                    console=Console(file=sink),
                    publisher=connected.publisher,
                    wait_ready=connected.wait_until_serving,
                )
        finally:
            connected.close()
        assert dataset_file(tmp_path / "svc").read_text() == reference.dataset
        status = main(
            ["export", "--from-kafka", endpoints["kafka"], "--run", "quickstart", "--out",
             str(tmp_path / "export"), "--formats", "jsonl", "--idle-seconds", "1",
             "--run-dir", str(tmp_path / "svc"), "--strict"]
        )  # fmt: skip
        assert status == 0
        assert dataset_file(tmp_path / "export").read_text() == reference.dataset
        assert (tmp_path / "state" / "quickstart" / "judge").is_dir()
        assert (tmp_path / "state" / "quickstart" / "logs" / "trainer.log").is_file()

        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, err_log.read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert not [pid for pid in children if alive(pid)]
    assert "stopped" in err_log.read_text()
