"""Reward-model versions handed from the trainer service to the reward service via a directory.

The trainer publishes version v of run R as ``<checkpoint-dir>/<R>/v<000000v>.pt`` (the head's
``state_dict`` and the version, written to a temporary file and renamed into place, so a reader
never sees a torn file). The reward service picks the newest version >= the one a Score call
asks for. With ``--kafka`` the checkpoints topic announces new versions instead of the directory
scan (:mod:`prefloop.rpc.dataplane`); a file here stays the payload of a head too large to travel
inline.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from prefloop.data.atomic import atomic_write_bytes

_VERSION_RE = re.compile(r"^v(\d{6,})\.pt$")


def run_dir(checkpoint_dir: Path, run: str) -> Path:
    """Where the versions of ``run`` live."""
    return checkpoint_dir / run


def version_path(checkpoint_dir: Path, run: str, version: int) -> Path:
    """The file of one version."""
    return run_dir(checkpoint_dir, run) / f"v{version:06d}.pt"


def published_versions(checkpoint_dir: Path, run: str) -> list[int]:
    """Versions published for ``run``, ascending."""
    d = run_dir(checkpoint_dir, run)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _VERSION_RE.match(p.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def save_blob(path: Path, blob: dict[str, Any]) -> None:
    """torch.save to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_blob(path: Path) -> dict[str, Any]:
    """torch.load of a file written by :func:`save_blob`."""
    blob = torch.load(path, weights_only=False, map_location="cpu")
    if not isinstance(blob, dict):
        raise ValueError(f"{path}: not a prefloop checkpoint")
    return blob


def publish(checkpoint_dir: Path, run: str, version: int, head_state: dict[str, Any]) -> Path:
    """Publish a version's head state; returns its path (the Checkpoint uri)."""
    path = version_path(checkpoint_dir, run, version)
    save_blob(path, {"run": run, "version": version, "head": head_state})
    return path


def retract_after(checkpoint_dir: Path, run: str, version: int) -> None:
    """Remove versions newer than ``version`` (after a Restore they are no longer the future)."""
    for v in published_versions(checkpoint_dir, run):
        if v > version:
            version_path(checkpoint_dir, run, v).unlink(missing_ok=True)


def prune(checkpoint_dir: Path, run: str, keep: int) -> None:
    """Keep the newest ``keep`` versions."""
    for v in published_versions(checkpoint_dir, run)[:-keep]:
        version_path(checkpoint_dir, run, v).unlink(missing_ok=True)
