"""A run killed with SIGKILL mid-way resumes to exactly the uninterrupted dataset; bad input
gets a clear error and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from _run_process import kill_after_round, run_command
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset


def _args(repo_root: Path, out: Path, overrides: list[str]) -> list[str]:
    args = ["run", str(repo_root / "examples/quickstart.yaml"), "--output", str(out)]
    for ov in overrides:
        args += ["--set", ov]
    return args


@pytest.mark.model
@pytest.mark.parametrize(
    "scope",
    [
        [],
        pytest.param(
            ["spec.acquisition.scope=pool", "spec.acquisition.candidatePoolSize=12"],
            marks=pytest.mark.long,  # 30 s: make test-long (the suite's 15-minute budget)
        ),
    ],
    ids=["batch", "pool"],
)
def test_sigkill_then_resume_gives_the_uninterrupted_dataset(
    repo_root: Path, tmp_path: Path, small_overrides: list[str], scope: list[str]
) -> None:
    """Pool scope too: the prompts that left the candidate pool are in the checkpoint."""
    overrides = [*small_overrides, "spec.acquisition.method=dts", "spec.batchSize=4", *scope]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # warm the shared feature cache and get the reference run
    full = tmp_path / "full"
    subprocess.run(
        run_command(repo_root, full, overrides), check=True, env=env, capture_output=True
    )
    reference = read_dataset(dataset_file(full))
    assert len(reference) == 32  # 40 prompts, 8 held out, 8 rounds of 4

    killed = tmp_path / "killed"
    done = kill_after_round(run_command(repo_root, killed, overrides), killed, 3, env)
    assert 3 <= done < 8
    assert not dataset_file(killed).exists()

    subprocess.run(
        run_command(repo_root, killed, overrides, "--resume"),
        check=True,
        env=env,
        capture_output=True,
    )
    resumed = read_dataset(dataset_file(killed))
    assert resumed == reference
    metrics = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == list(range(1, 9))
    # every label judged exactly once across the crash: annotations == distinct pairs
    assert metrics[-1]["annotations_used"] == len({r["pair_id"] for r in resumed}) == 32


@pytest.mark.model
def test_resume_refuses_a_different_config(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    out = tmp_path / "r"
    base = [*small_overrides, "spec.budget.maxRounds=1"]
    assert main(_args(repo_root, out, base)) == 0
    code = main([*_args(repo_root, out, [*base, "spec.seed=99"]), "--resume"])
    assert code == 2


def test_resume_without_checkpoint_is_an_error(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(repo_root / "examples/quickstart.yaml"),
            "--output",
            str(tmp_path / "x"),
            "--resume",
        ]
    )
    assert code == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_broken_data_row_names_file_and_line(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (repo_root / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[:5]
    row = json.loads(lines[2])
    row["responses"][3]["score"] = "abc"
    lines[2] = json.dumps(row)
    data = tmp_path / "broken.jsonl"
    data.write_text("\n".join(lines) + "\n")
    code = main(
        [
            "run",
            str(repo_root / "examples/quickstart.yaml"),
            "--output",
            str(tmp_path / "o"),
            "--set",
            f"spec.prompts.path={data}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.jsonl:3" in err and "score" in err


def test_bad_manifest_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: prefloop.dev/v1alpha1\nkind: ActiveRun\nspec:\n  batchSize: -1\n")
    assert main(["run", str(m)]) == 2
    assert "spec.batchSize" in capsys.readouterr().err
