"""A finished run directory is never overwritten, and ``prefloop status`` reads any run directory.

Issue 7: ``prefloop run`` over a finished run (or a resume with another configuration) rewrote
its ``activerun.yaml``; an unreachable budget ended with "prompts exhausted" and no warning
(item 9). There was no ``prefloop status`` and no machine-readable output (item 10).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from prefloop.cli import main

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """20 sample prompts with 4 of their responses each, and one feature cache for the module."""
    base = tmp_path_factory.mktemp("shared")
    rows = [json.loads(x) for x in (REPO / "data/alpacaeval/sample100.jsonl").open()][:20]
    data = base / "tiny.jsonl"
    data.write_text(
        "".join(json.dumps({**r, "responses": r["responses"][:4]}) + "\n" for r in rows)
    )
    return data, base / "features"


def _tiny(shared: tuple[Path, Path], limit: int) -> list[str]:
    """The quickstart on ``limit`` prompts (20% held out) in rounds of 2, small and fast."""
    data, cache = shared
    return [
        f"spec.prompts.path={data}",
        f"spec.prompts.limit={limit}",
        "spec.evaluation.shadowRandom=false",
        "spec.batchSize=2",
        "spec.rewardModel.embedder.maxLengthTokens=32",
        f"spec.rewardModel.embedder.cacheDir={cache}",
        "spec.rewardModel.head.numHeads=2",
        "spec.trainer.epochsPerRound=2",
    ]


def _run_args(out: Path, overrides: list[str], *extra: str) -> list[str]:
    args = ["run", str(QUICKSTART), "--output", str(out), *extra]
    for ov in overrides:
        args += ["--set", ov]
    return args


@dataclass(frozen=True)
class FinishedRun:
    out: Path
    overrides: list[str]
    stderr: str


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shared: tuple[Path, Path]) -> FinishedRun:
    """5 prompts: 4 in the pool, 2 rounds of 2; a budget of 6 the pool cannot fill."""
    overrides = [*_tiny(shared, 5), "spec.budget.maxAnnotations=6"]
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "prefloop.cli", *_run_args(out, overrides)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return FinishedRun(out, overrides, proc.stderr)


def test_run_warns_when_the_budget_cannot_be_reached(finished: FinishedRun) -> None:
    assert "warning: budget.maxAnnotations 6 cannot be reached" in finished.stderr
    assert "at least 2 short" in finished.stderr
    summary = json.loads((finished.out / "summary.json").read_text())
    assert summary["annotations_used"] == 4
    assert summary["stop_reason"] == "prompts exhausted"
    assert summary["warnings"] == [
        "budget.maxAnnotations 6 was not reached: the run stopped (prompts exhausted) after "
        "4 annotations, 2 short"
    ]
    assert (
        "**Warning:** budget.maxAnnotations 6 was not reached"
        in (finished.out / "summary.md").read_text()
    )


def test_a_finished_run_is_not_overwritten(
    finished: FinishedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in finished.out.rglob("*") if p.is_file()}
    # a fresh start over it, and a resume with another seed: both refused, nothing rewritten
    assert main(_run_args(finished.out, [*finished.overrides, "spec.seed=5"])) == 2
    err = capsys.readouterr().err
    assert "already holds finished run 'quickstart' (round 2, 4 annotations)" in err
    assert "--resume" in err
    code = main(_run_args(finished.out, [*finished.overrides, "spec.seed=5"], "--resume"))
    assert code == 2
    assert "different configuration" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in finished.out.rglob("*") if p.is_file()}
    assert after == before
    manifest = yaml.safe_load((finished.out / "activerun.yaml").read_text())
    assert manifest["spec"]["seed"] == 4


def test_status_reads_a_finished_run(
    finished: FinishedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(finished.out), "-o", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["phase"] == "finished"
    assert status["name"] == "quickstart" and status["method"] == "delta_ucb"
    assert status["round"] == 2
    assert (status["annotations_used"], status["max_annotations"]) == (4, 6)
    assert status["pairs_in_dataset"] == 4 and status["max_pairs"] is None
    assert 0.0 <= status["heldout_accuracy"] <= 1.0
    assert status["stop_reason"] == "prompts exhausted"
    assert status["dataset"] and Path(status["dataset"]).exists()
    assert status["files"] and all(Path(p).is_file() for p in status["files"].values())
    assert any("2 short" in w for w in status["warnings"])

    assert main(["status", str(finished.out), "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == status

    assert main(["status", str(finished.out)]) == 0
    text = capsys.readouterr().out
    assert "phase" in text and "finished" in text
    assert "4 of 6" in text and "prompts exhausted" in text


def test_status_of_a_directory_without_a_run_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "not a prefloop run directory" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_interrupt_status_then_resume(
    tmp_path: Path, shared: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C mid-run: exit 130 and phase interrupted; --resume finishes it."""
    out = tmp_path / "run"
    overrides = [*_tiny(shared, 20), "spec.budget.maxAnnotations=null"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefloop.cli", *_run_args(out, overrides)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as in a terminal: a suite started in the background of a shell without job
        # control inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pointer = out / "checkpoints" / "LATEST"
    deadline = time.monotonic() + 300
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)  # frozen after its first checkpoint: it cannot finish
    assert proc.poll() is None, "the run finished before it could be interrupted"
    assert main(["status", str(out), "-o", "json"]) == 0
    running = json.loads(capsys.readouterr().out)
    assert running["phase"] == "running" and running["pid"] == proc.pid
    assert running["dataset"] is None and running["files"] == {}

    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=120) == 130
    assert main(["status", str(out), "-o", "json"]) == 0
    stopped = json.loads(capsys.readouterr().out)
    assert stopped["phase"] == "interrupted"
    assert 1 <= stopped["round"] < 8

    assert main(_run_args(out, overrides, "--resume")) == 0
    capsys.readouterr()
    assert main(["status", str(out), "-o", "json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["phase"] == "finished" and done["round"] == 8
    assert done["pairs_in_dataset"] == done["annotations_used"] == 16


def test_a_killed_runner_reads_as_interrupted(tmp_path: Path) -> None:
    """``running`` recorded by a process that no longer exists is reported as interrupted."""
    code = "import sys; from pathlib import Path; from prefloop.status import record_phase; "
    code += "record_phase(Path(sys.argv[1]), 'running')"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    status = subprocess.run(
        [sys.executable, "-m", "prefloop.cli", "status", str(tmp_path), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(status.stdout)["phase"] == "interrupted"
