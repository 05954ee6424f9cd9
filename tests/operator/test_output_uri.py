"""``output.uri``: the finished run directory is copied with fsspec (file:// here), without the
working state, summary.json last, and a second copy changes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from prefloop.data.output_uri import OutputCopyError, copy_run_outputs, files_to_copy

OUTPUTS = {
    "README.md": "card",
    "data/train.jsonl": '{"a": 1}\n',
    "data/ties.jsonl": '{"t": 1}\n',
    "metrics.csv": "round\n1\n",
    "summary.json": "{}",
}
WORKING_STATE = {
    "status.json": "{}",
    "checkpoints/LATEST": "round-0001\n",
    "checkpoints/round-0001/state.json": "{}",
    "features/cache.npy": "x",
    "data/.train.jsonl.tmp": "half",
}


def make_run_dir(root: Path) -> Path:
    for rel, text in {**OUTPUTS, **WORKING_STATE}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_outputs_are_copied_to_a_file_uri_without_working_state(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "runs" / "r1")
    out = tmp_path / "bucket" / "r1"
    written = copy_run_outputs(run_dir, f"file://{out}")
    assert tree(out) == OUTPUTS
    assert written[-1] == f"file://{out}/summary.json"  # the completion marker goes last
    assert [p.as_posix() for p in files_to_copy(run_dir)][-1] == "summary.json"
    (run_dir / "metrics.csv").write_text("round\n1\n2\n")  # a retried driver copies again
    copy_run_outputs(run_dir, f"file://{out}/")
    assert tree(out) == {**OUTPUTS, "metrics.csv": "round\n1\n2\n"}


@pytest.mark.skipif(
    importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed: no error to see"
)
def test_a_missing_backend_names_the_extra_to_install(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "r1")
    with pytest.raises(OutputCopyError, match=r"prefloop\[gcs\]"):
        copy_run_outputs(run_dir, "gs://bucket/r1")
