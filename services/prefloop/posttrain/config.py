"""What a post-training job reads: its settings, the run directory's pairs and their provenance.

The settings are :class:`~prefloop.spec_posttrain.PostTrainingSpec`, the model of
``spec.postTraining`` (re-exported here so the trainers have one config module, as TRL pairs
``DPOConfig`` with ``DPOTrainer``). A job is those settings plus the run directory to read
(``prefloop run`` output: ``README.md`` card and ``data/train.{jsonl,parquet}``) and the
directory to write. :func:`load_pairs` reads the training pairs in TRL's conversational
preference format (``prompt``, ``chosen``, ``rejected`` message lists, plus ``margin``) and the
card's ``prefloop:`` provenance block, and fails with a message naming the directory when it is
not a run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from prefloop.data.run_dataset import CARD_NAME, dataset_file
from prefloop.data.writers import read_dataset
from prefloop.spec_posttrain import DpoLoss, LoraSpec, PostTrainingKind, PostTrainingSpec

__all__ = [
    "DpoLoss",
    "LoraSpec",
    "PostTrainError",
    "PostTrainingKind",
    "PostTrainingSpec",
    "RunPairs",
    "deepspeed_config_path",
    "load_pairs",
]

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
BUILTIN_DEEPSPEED = {"zero3": "zero3.json"}
"""DeepSpeed configs shipped in ``prefloop/posttrain/configs`` by short name."""


class PostTrainError(ValueError):
    """Bad input to a training job: not a run directory, no pairs, no model, a missing extra."""


@dataclass(frozen=True)
class RunPairs:
    """The training pairs of one run directory and where they came from."""

    run_dir: Path
    rows: list[dict[str, Any]]
    """One dict per pair: ``prompt``/``chosen``/``rejected`` message lists and ``margin``."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """The card's ``prefloop:`` block (run, method, seed, judge, budget, counts)."""

    def dataset(self, columns: tuple[str, ...] = PAIR_COLUMNS) -> Any:
        """The pairs as a ``datasets.Dataset`` of ``columns`` (what the TRL trainer reads)."""
        from datasets import Dataset

        return Dataset.from_list([{c: r[c] for c in columns} for r in self.rows])


def read_card_provenance(run_dir: Path) -> dict[str, Any]:
    """The ``prefloop:`` block of a run directory's dataset card (empty if it has none).

    Why: the model card names the dataset's run, method, seed, judge and budget; the card is
    where ``prefloop run`` and ``prefloop export`` record them.
    """
    text = (run_dir / CARD_NAME).read_text(encoding="utf-8")
    parts = text.split("---\n")
    if not text.startswith("---\n") or len(parts) < 3:
        raise PostTrainError(f"{run_dir / CARD_NAME}: no YAML front matter (not a run's card)")
    front = yaml.safe_load(parts[1]) or {}
    block = front.get("prefloop", {}) if isinstance(front, dict) else {}
    return dict(block) if isinstance(block, dict) else {}


def load_pairs(run_dir: str | Path) -> RunPairs:
    """Read a run directory's training pairs and provenance; clear errors when it is not one.

    Why: ``prefloop train`` starts from what ``prefloop run`` wrote, nothing else; a wrong path
    must say what is missing rather than fail inside TRL.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise PostTrainError(f"--dataset {root}: no such directory (give a prefloop run directory)")
    if not (root / CARD_NAME).is_file():
        raise PostTrainError(
            f"--dataset {root}: no {CARD_NAME} dataset card; is it a `prefloop run` output "
            "directory (runs/NAME)?"
        )
    files = [dataset_file(root, fmt) for fmt in ("jsonl", "parquet")]
    found = [f for f in files if f.is_file()]
    if not found:
        raise PostTrainError(f"--dataset {root}: neither {files[0]} nor {files[1]} exists")
    rows = read_dataset(found[0])
    if not rows:
        raise PostTrainError(f"{found[0]}: the run has no training pairs yet")
    for n, row in enumerate(rows):
        missing = [c for c in PAIR_COLUMNS if not row.get(c)]
        if missing:
            raise PostTrainError(f"{found[0]} row {n + 1}: missing {', '.join(missing)}")
        row.setdefault("margin", 0.0)
    return RunPairs(root, rows, read_card_provenance(root))


def deepspeed_config_path(value: str | None) -> str | None:
    """The DeepSpeed JSON file for ``value``: a shipped config by name, or a path that exists."""
    if value is None:
        return None
    if value in BUILTIN_DEEPSPEED:
        return str(resources.files("prefloop.posttrain") / "configs" / BUILTIN_DEEPSPEED[value])
    if not Path(value).is_file():
        raise PostTrainError(
            f"deepspeed: {value!r} is neither a shipped config ({', '.join(BUILTIN_DEEPSPEED)}) "
            "nor an existing JSON file"
        )
    return value


def output_dir_for(spec: PostTrainingSpec, run_dir: Path, output: str | Path | None) -> Path:
    """The directory to save into: ``output`` if given, else the spec's template filled in."""
    if output is not None:
        return Path(output)
    return Path(spec.output_dir.replace("{runDir}", str(run_dir)).replace("{kind}", spec.kind))
