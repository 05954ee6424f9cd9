"""The preference dataset of a run directory: where its files are, and writing them all at once.

Layout (``datasets.load_dataset(run_dir)`` reads it through the card, nothing else)::

    run_dir/README.md            dataset card: configs, features, provenance
    run_dir/data/train.jsonl     the training pairs (and/or train.parquet)
    run_dir/data/ties.jsonl      tied pairs, only with output.ties=separate and if any

Every caller that needs a dataset file of a run directory asks :func:`dataset_file`, so the
layout lives here only. :func:`write_run_dataset` adds the ``margin`` column, splits off the ties
by the run's policy, writes the files atomically (mode 0644 under the usual umask), removes files
of this layout that the new write does not produce (a format or a ties file of an earlier run),
and writes the card last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

from prefloop.data.atomic import atomic_write_text
from prefloop.data.card import CardConfig, DatasetProvenance, render_card
from prefloop.data.writers import OUTPUT_FORMATS, arrow_table, write_dataset

TiesPolicy = Literal["separate", "include", "drop"]
DatasetPart = Literal["train", "ties"]

DATA_DIR = "data"
CARD_NAME = "README.md"
TIES_POLICIES: tuple[str, ...] = get_args(TiesPolicy)
PARTS: tuple[str, ...] = get_args(DatasetPart)


def dataset_file(run_dir: str | Path, fmt: str = "jsonl", part: DatasetPart = "train") -> Path:
    """The path of one dataset file of a run directory, e.g. ``run_dir/data/train.jsonl``.

    Why: the one place that knows the layout; readers and writers never hard-code paths.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"fmt must be one of {OUTPUT_FORMATS}, got {fmt!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return Path(run_dir) / DATA_DIR / f"{part}.{fmt}"


def margin_of(row: dict[str, Any]) -> float:
    """The ``margin`` of a row; see :data:`prefloop.data.card.MARGIN_DEFINITION`.

    Why: TRL's RewardTrainer reads a ``margin`` column and asks the reward gap to exceed it,
    so it must be a number on every row, larger where the judge saw a larger difference.
    """
    chosen, rejected = row.get("chosen_score"), row.get("rejected_score")
    if _finite(chosen) and _finite(rejected):
        return float(chosen) - float(rejected)
    probability = row.get("probability_chosen")
    return 2.0 * float(probability) - 1.0 if _finite(probability) else 0.0


def _finite(x: object) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def with_margin(row: dict[str, Any]) -> dict[str, Any]:
    """The row with ``margin`` (recomputed) right after ``probability_chosen``."""
    margin = margin_of(row)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "margin":
            continue
        out[key] = value
        if key == "probability_chosen":
            out["margin"] = margin
    out.setdefault("margin", margin)
    return out


def split_ties(
    rows: Sequence[dict[str, Any]], policy: TiesPolicy
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, tied rows) under ``policy``; ``include`` keeps ties in training.

    Why: a tie is no preference; DPO would train on it as one. ``separate`` and ``drop`` keep
    ties out of the training files, ``separate`` keeps them in a file of their own.
    """
    if policy not in TIES_POLICIES:
        raise ValueError(f"ties policy must be one of {TIES_POLICIES}, got {policy!r}")
    if policy == "include":
        return list(rows), []
    return [r for r in rows if not r.get("tie")], [r for r in rows if r.get("tie")]


def write_run_dataset(
    run_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    provenance: DatasetProvenance,
    *,
    formats: Sequence[str] = OUTPUT_FORMATS,
    ties: TiesPolicy = "separate",
) -> dict[str, Path]:
    """Write the run's dataset files and its card; returns the written paths by name.

    Why: the run's product must load with ``datasets.load_dataset(run_dir)`` straight into
    TRL, with the same schema in every run, and one writer serves the run and the Kafka export.

    Returns:
        ``{"jsonl": .../data/train.jsonl, "parquet": ..., "ties_jsonl": ..., "card": ...}``
        (only what was written).
    """
    run_dir = Path(run_dir)
    formats = tuple(dict.fromkeys(formats))
    train, tied = split_ties([with_margin(r) for r in rows], ties)
    parts: dict[DatasetPart, list[dict[str, Any]]] = {"train": train}
    if ties == "separate" and tied:
        parts["ties"] = tied
    written: dict[str, Path] = {}
    for part, part_rows in parts.items():
        paths = write_dataset(part_rows, run_dir / DATA_DIR, formats=formats, stem=part)
        for fmt, path in paths.items():
            written[fmt if part == "train" else f"{part}_{fmt}"] = path
    _remove_stale(run_dir, set(written.values()))
    config_format = "parquet" if "parquet" in formats else formats[0]
    configs = [
        CardConfig(
            "default" if part == "train" else part,
            dataset_file(".", config_format, part).as_posix(),
            len(part_rows),
        )
        for part, part_rows in parts.items()
    ]
    schema = arrow_table(train or tied, str(run_dir)).schema
    card = render_card(provenance, configs, schema, ties_policy=ties, ties=len(tied))
    written["card"] = run_dir / CARD_NAME
    atomic_write_text(written["card"], card)
    return written


def _remove_stale(run_dir: Path, keep: set[Path]) -> None:
    """Delete this layout's files that the current write did not produce."""
    for part in get_args(DatasetPart):
        for fmt in OUTPUT_FORMATS:
            path = dataset_file(run_dir, fmt, part)
            if path not in keep:
                path.unlink(missing_ok=True)
