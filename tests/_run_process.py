"""`prefloop run` as a child process, and how far its checkpoints got (for SIGKILL tests).

Shared by the resume-after-SIGKILL tests of the reward-head loop (tests/engine) and of the
policy loop (tests/trainer): both kill the process once a checkpoint is on disk, resume it with
``--resume`` and compare the dataset with an uninterrupted run's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def run_command(repo_root: Path, out: Path, overrides: list[str], *extra: str) -> list[str]:
    """The argv of ``python -m prefloop.cli run`` on the quickstart with ``overrides``."""
    cmd = [sys.executable, "-m", "prefloop.cli", "run", str(repo_root / "examples/quickstart.yaml")]
    cmd += ["--output", str(out), *extra]
    for ov in overrides:
        cmd += ["--set", ov]
    return cmd


def latest_round(out: Path) -> int:
    """The round of the run's newest complete checkpoint (0 before the first)."""
    pointer = out / "checkpoints" / "LATEST"
    if not pointer.exists():
        return 0
    return int(pointer.read_text().strip().split("-")[1])


def kill_after_round(cmd: list[str], out: Path, round_index: int, env: dict[str, str]) -> int:
    """Start ``cmd`` (a ``prefloop run`` writing to ``out``), SIGKILL it once the checkpoint of
    ``round_index`` is on disk, and return the round its newest checkpoint reached."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while latest_round(out) < round_index and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return latest_round(out)
