"""Run state and its atomic, per-round checkpoints.

After every round the engine writes ``<run>/checkpoints/round-NNNN/`` (state.json, every
labelled row so far in ``dataset.jsonl`` with the ties, the trainer's model + optimizer + replay
buffer, the metrics history) into a temporary directory, renames it into place, and only then
points ``<run>/checkpoints/LATEST`` at it (an ``os.replace`` of a one-line file). A crash at
any instant leaves either the previous checkpoint or the new one, never a half-written one.
``prefloop run --resume`` loads LATEST.

Randomness needs no saved generator state: every random choice of round r is drawn from a
generator seeded with ``derive_seed(seed, r, stream)``, so a resumed run draws exactly what the
uninterrupted run would have drawn. The torch RNG state is saved anyway for code outside that
discipline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from prefloop.data.atomic import fsync_dir
from prefloop.data.writers import read_dataset, write_jsonl_atomic

LATEST = "LATEST"
CHECKPOINT_ROWS = "dataset.jsonl"
"""Every labelled row so far, ties included (the run's output splits them off at the end)."""


def derive_seed(seed: int, round_index: int, stream: str) -> int:
    """A 63-bit seed for one purpose (``stream``) of one round, independent of call order."""
    digest = hashlib.sha256(f"{seed}/{round_index}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class RunState:
    """Everything the engine needs to continue a run after the last completed round."""

    fingerprint: str
    round: int = 0
    """Rounds completed."""
    prompt_offset: int = 0
    """Prompts of the (shuffled) pool consumed so far."""
    pool_done: list[str] = field(default_factory=list)
    """``acquisition.scope: pool``: prompt ids that left the candidate pool (labelled, or with
    no distinct pair), in the order they left; ``prompt_offset`` is their count."""
    annotations_used: int = 0
    """Judge calls that produced a label."""
    pairs_used: int = 0
    """Pairs that entered the dataset, whatever labelled them (``budget.maxPairs``)."""
    model_version: int = 0
    """Reward-model version (bumped by every training round)."""
    source_duels: list[list[str]] = field(default_factory=list)
    """[winner model, loser model] of every judge-labelled, untied pair in the data set, in
    order, kept while ``rewardModel.sourceModels`` is enabled: what it fits its strengths on."""
    judged: dict[str, dict[str, Any]] = field(default_factory=dict)
    """pair_id -> stored judgement: the judge is never asked twice for the same pair."""
    judge_failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    """pair_id -> a pair the judge could not label after its retries (the request and why): not
    in the data set, asked again on ``--resume``."""
    usage_totals: dict[str, float] = field(default_factory=dict)
    """Judge and generation calls, tokens, seconds, cache hits and cost, summed over the run."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per-round metrics rows."""
    finished: bool = False
    """The run ended (budget or prompts exhausted)."""
    stop_reason: str = ""
    """Why it ended."""


def save_checkpoint(
    run_dir: Path,
    state: RunState,
    rows: list[dict[str, Any]],
    save_trainer: Any,
    keep: int = 2,
) -> Path:
    """Atomically write round ``state.round``'s checkpoint; keep the newest ``keep``."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"round-{state.round:04d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / "state.json").write_text(json.dumps(asdict(state), indent=1, sort_keys=True))
    write_jsonl_atomic(tmp / CHECKPOINT_ROWS, rows)
    save_trainer(tmp / "trainer")
    torch.save({"torch_rng": torch.get_rng_state()}, tmp / "rng.pt")
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = ckpt_root / f".{LATEST}.tmp"
    pointer_tmp.write_text(name + "\n")
    os.replace(pointer_tmp, ckpt_root / LATEST)
    fsync_dir(ckpt_root)
    _prune(ckpt_root, keep)
    return final


def load_checkpoint(run_dir: Path) -> tuple[RunState, list[dict[str, Any]], Path] | None:
    """The latest checkpoint's state, data set rows and trainer directory, or None."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    ckpt = run_dir / "checkpoints" / pointer.read_text().strip()
    raw = json.loads((ckpt / "state.json").read_text())
    state = RunState(**raw)
    rows = read_dataset(ckpt / CHECKPOINT_ROWS)
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch_rng"])
    return state, rows, ckpt / "trainer"


def _prune(ckpt_root: Path, keep: int) -> None:
    rounds = sorted(p for p in ckpt_root.glob("round-*") if p.is_dir())
    for old in rounds[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
