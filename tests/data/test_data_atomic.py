"""Durable files are readable by other users (mode follows the umask) and their renames are
fsynced: every writer of prefloop's durable files goes through :mod:`prefloop.data.atomic`."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from prefloop.data.atomic import atomic_write_bytes
from prefloop.data.card import DatasetProvenance
from prefloop.data.records import PreferencePair, Response
from prefloop.data.run_dataset import write_run_dataset
from prefloop.data.writers import append_jsonl, write_jsonl_atomic, write_parquet_atomic
from prefloop.engine.checkpoint import RunState, save_checkpoint
from prefloop.reward.feature_cache import FeatureCache


def _rows(n: int = 3) -> list[dict[str, object]]:
    return [
        PreferencePair(
            pair_id=f"p{i}",
            run="r",
            round=0,
            prompt_id=f"q{i}",
            prompt=f"prompt {i}",
            chosen=Response("a", f"good {i}", 0.5 if i == 0 else 0.9),
            rejected=Response("b", f"bad {i}", 0.5 if i == 0 else 0.1),
            chosen_index=0,
            rejected_index=1,
            acquisition="random",
            judge="oracle",
            tie=i == 0,
        ).to_row()
        for i in range(n)
    ]


class _Embedder:
    name = "fake:v1"
    dim = 3

    def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return np.ones((len(prompts), self.dim), dtype=np.float32)


def _write_everything(root: Path) -> None:
    """One file of each durable kind prefloop writes."""
    atomic_write_bytes(root / "blob.bin", b"x")
    write_jsonl_atomic(root / "rows.jsonl", [{"a": 1}])
    write_parquet_atomic(root / "rows.parquet", _rows())
    append_jsonl(root / "log.jsonl", [{"a": 1}])
    provenance = DatasetProvenance(run="r", method="random", judge="oracle")
    write_run_dataset(root / "run", _rows(), provenance)
    FeatureCache(root / "features").get_or_compute(["p"], ["r"], _Embedder())

    def save_trainer(directory: Path) -> None:
        directory.mkdir()
        atomic_write_bytes(directory / "head.pt", b"weights")

    save_checkpoint(root / "run", RunState(fingerprint="f"), _rows(), save_trainer)


@pytest.fixture
def set_umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize(
    ("umask", "expected"),
    [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=["umask022", "umask077", "umask002"],
)
def test_durable_files_get_0666_minus_the_umask(
    tmp_path: Path, set_umask: Callable[[int], None], umask: int, expected: int
) -> None:
    set_umask(umask)
    _write_everything(tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    assert {
        "blob.bin",
        "rows.parquet",
        "run/data/train.parquet",
        "run/data/ties.jsonl",
        "run/README.md",
        "features/index.json",
        "features/shard-000001.npy",
        "run/checkpoints/round-0000/dataset.jsonl",
        "run/checkpoints/round-0000/trainer/head.pt",
    } <= names
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == dict.fromkeys(names, expected)
    assert not [n for n in names if n.endswith(".tmp")]


def test_rename_is_followed_by_an_fsync_of_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory holding the new name is fsynced after the rename made it visible."""
    real_fsync = os.fsync
    synced_dirs: list[tuple[str, bytes | None]] = []
    target = tmp_path / "sub" / "file.bin"

    def recording_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            content = target.read_bytes() if target.exists() else None
            synced_dirs.append((os.readlink(f"/proc/self/fd/{fd}"), content))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert synced_dirs == [(str(target.parent), b"old"), (str(target.parent), b"new")]
    synced_dirs.clear()
    append_jsonl(tmp_path / "log.jsonl", [{"a": 1}])  # a new file is a new directory entry
    append_jsonl(tmp_path / "log.jsonl", [{"a": 2}])  # an append is not
    assert [d for d, _ in synced_dirs] == [str(tmp_path)]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
