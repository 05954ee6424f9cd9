"""Is an export from Kafka complete? Compare it with what the run itself recorded.

A broker with in-memory storage forgets everything when it restarts, and a topic may have been
cleaned up; ``prefloop export --from-kafka`` would then quietly write fewer rows than the run
labelled. The run directory knows better: its latest checkpoint (``checkpoints/LATEST``) holds
every dataset row of the rounds completed so far. :func:`check_export` compares the pair ids
read from the topic with those rows and names what is missing, so the export can warn (and
fail with ``--strict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DURABLE_HINT = (
    "the broker lost them (restarted with in-memory storage?); a complete export needs a "
    "broker with durable storage (prefloop broker, or a real Kafka)"
)


@dataclass(frozen=True)
class ExportCheck:
    """What the run recorded against what the topic gave back.

    Attributes:
        source: the checkpoint the expected rows come from.
        expected: dataset rows the checkpoint holds (pseudo-labels only if exported too).
        exported: rows read from the topic.
        missing: pair ids the checkpoint has and the topic does not, sorted.
    """

    source: Path
    expected: int
    exported: int
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    def message(self, run: str) -> str:
        """One line saying what is missing and why that happens."""
        first = ", ".join(self.missing[:3])
        return (
            f"export of run {run} is incomplete: {len(self.missing)} of the {self.expected} "
            f"rows in {self.source} are not on the annotations topic (first: {first}); "
            + DURABLE_HINT
        )


def latest_checkpoint_rows(run_dir: Path) -> tuple[Path, list[dict[str, Any]]] | None:
    """The dataset rows of ``run_dir``'s latest checkpoint, or None if it has none.

    Reads the files directly (``checkpoints/LATEST`` -> ``round-NNNN/dataset.jsonl``), so the
    check needs neither torch nor the run's models.
    """
    pointer = run_dir / "checkpoints" / "LATEST"
    if not pointer.is_file():
        return None
    dataset = run_dir / "checkpoints" / pointer.read_text().strip() / "dataset.jsonl"
    if not dataset.is_file():
        return None
    rows = [json.loads(line) for line in dataset.read_text().splitlines() if line.strip()]
    return dataset, rows


def check_export(
    rows: list[dict[str, Any]], run_dir: Path, *, include_pseudo_labels: bool = False
) -> ExportCheck | None:
    """Compare exported ``rows`` with ``run_dir``'s latest checkpoint (None: nothing to compare).

    Why: a broker restart with in-memory storage drops rows silently; the run's own record is
    the only way to tell an export is short.
    """
    recorded = latest_checkpoint_rows(run_dir)
    if recorded is None:
        return None
    source, expected_rows = recorded
    expected = [
        str(r["pair_id"])
        for r in expected_rows
        if "pair_id" in r and (include_pseudo_labels or r.get("label_source") != "pseudo")
    ]
    got = {str(r.get("pair_id")) for r in rows}
    missing = tuple(sorted(p for p in set(expected) if p not in got))
    return ExportCheck(source, len(set(expected)), len(rows), missing)
