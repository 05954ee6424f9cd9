"""Where a run stands, read from its run directory alone: ``prefloop status RUN_DIR``.

A run directory tells its own story: ``activerun.yaml`` (the manifest as run), ``status.json``
(the phase the runner last recorded: running, finished or failed, with the process id, host,
stop reason, warnings and error), ``checkpoints/LATEST`` (the last completed round's state:
round, annotations used, metrics history) and, once finished, ``summary.json`` (which names the
dataset files). :func:`read_status` combines them into one :class:`RunStatus`; a ``running``
phase whose process is gone on this host reads as ``interrupted`` (``--resume`` continues it).

Only the standard library, ``yaml`` and the atomic writer are imported here, so the command
answers at once; nothing is written by reading.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from prefloop.data.atomic import atomic_write_bytes

STATUS_FILE = "status.json"
"""The phase file the runner keeps up to date in the run directory."""
MANIFEST_FILE = "activerun.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_POINTER = Path("checkpoints") / "LATEST"

Phase = Literal["running", "finished", "failed", "interrupted", "not started"]


class RunDirError(ValueError):
    """A directory is not a run directory, or holds a run a command would overwrite."""


@dataclass(frozen=True)
class RunStatus:
    """One run's progress, as ``prefloop status`` prints it (``-o json`` gives these keys)."""

    run_dir: str
    name: str | None
    method: str | None
    phase: Phase
    round: int
    prompts_done: int | None
    annotations_used: int
    max_annotations: int | None
    """None: one pass over the prompts."""
    pairs_in_dataset: int
    max_pairs: int | None
    """``budget.maxPairs``; None: no limit on dataset pairs."""
    heldout_accuracy: float | None
    stop_reason: str
    dataset: str | None = None
    """Where to load the preference data from once the run finished: the run directory when it
    carries a dataset card (``datasets.load_dataset(dataset)``), else the JSONL file."""
    files: dict[str, str] = field(default_factory=dict)
    """Kind -> path of every output the finished run wrote (data files, metrics, plot, card)."""
    checkpoint: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    updated_at: str | None = None
    """When the runner recorded the phase (the start of the run while it is running)."""
    pid: int | None = None
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON / YAML output."""
        return asdict(self)


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds labelled data or finished outputs of a run.

    Why: ``prefloop run`` without ``--resume`` must not start over such a directory, which would
    overwrite its manifest, checkpoints and dataset.
    """
    return (run_dir / CHECKPOINT_POINTER).exists() or (run_dir / SUMMARY_FILE).exists()


def record_phase(run_dir: Path, phase: Phase, **fields: Any) -> None:
    """Write ``status.json`` atomically: the phase, this process, the time and ``fields``.

    Why: only the runner knows whether it is still running or failed; the file lets
    ``prefloop status`` (or a person) tell a live run from a finished, failed or killed one.
    """
    data = {
        "phase": phase,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
    atomic_write_bytes(run_dir / STATUS_FILE, json.dumps(data, indent=1).encode("utf-8"))


def read_status(run_dir: str | Path) -> RunStatus:
    """Read a run directory's progress; raise :class:`RunDirError` if it holds no run.

    Why: tools (a notebook, a CI job, an operator) need the state of a run without importing the
    engine or parsing logs.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    manifest = _read_yaml(run_dir / MANIFEST_FILE)
    recorded = _read_json(run_dir / STATUS_FILE)
    summary = _read_json(run_dir / SUMMARY_FILE)
    state, checkpoint = _latest_state(run_dir)
    if manifest is None and recorded is None and summary is None and state is None:
        raise RunDirError(
            f"{run_dir}: not a prefloop run directory (no {MANIFEST_FILE}, {STATUS_FILE}, "
            f"{SUMMARY_FILE} or checkpoint)"
        )
    metadata = _mapping(_mapping(manifest).get("metadata"))
    spec = _mapping(_mapping(manifest).get("spec"))
    metrics = list((state or {}).get("metrics") or [])
    last = metrics[-1] if metrics else {}
    recorded = recorded or {}
    summary = summary or {}
    phase = _phase(recorded, summary, state)
    files = {str(k): str(v) for k, v in _mapping(summary.get("files")).items()}
    finished = phase == "finished"
    accuracy = summary.get("final_heldout_accuracy") if finished else last.get("heldout_accuracy")
    return RunStatus(
        run_dir=str(run_dir),
        name=metadata.get("name") or summary.get("run"),
        method=_mapping(spec.get("acquisition")).get("method") or summary.get("method"),
        phase=phase,
        round=int((state or {}).get("round", summary.get("rounds", 0))),
        prompts_done=(state or {}).get("prompt_offset"),
        annotations_used=int(
            (state or {}).get("annotations_used", summary.get("annotations_used", 0))
        ),
        max_annotations=_mapping(spec.get("budget")).get("maxAnnotations"),
        pairs_in_dataset=int(
            summary["pairs_in_dataset"]
            if finished and "pairs_in_dataset" in summary
            else (state or {}).get(
                "pairs_used", sum(int(m.get("pairs_in_dataset", 0)) for m in metrics)
            )
        ),
        max_pairs=_mapping(spec.get("budget")).get("maxPairs"),
        heldout_accuracy=_finite(accuracy),
        stop_reason=str(recorded.get("stop_reason") or summary.get("stop_reason") or ""),
        dataset=_dataset_location(run_dir, files) if finished else None,
        files=files if finished else {},
        checkpoint=checkpoint,
        warnings=[str(w) for w in recorded.get("warnings") or summary.get("warnings") or []],
        error=recorded.get("error"),
        updated_at=recorded.get("updated_at"),
        pid=recorded.get("pid"),
        host=recorded.get("host"),
    )


def render_status(status: RunStatus) -> str:
    """The human table of ``prefloop status``: one field per line."""
    budget = "one pass" if status.max_annotations is None else str(status.max_annotations)
    acc = "n/a" if status.heldout_accuracy is None else f"{status.heldout_accuracy:.3f}"
    phase: str = status.phase
    if status.phase == "running" and status.pid is not None:
        phase = f"running (pid {status.pid} on {status.host})"
    rows = [
        ("run", f"{status.name or '?'}  ({status.run_dir})"),
        ("method", status.method or "?"),
        ("phase", phase),
        ("round", str(status.round)),
        ("annotations", f"{status.annotations_used} of {budget}"),
        (
            "pairs in dataset",
            f"{status.pairs_in_dataset}"
            + ("" if status.max_pairs is None else f" of {status.max_pairs}"),
        ),
        ("held-out accuracy", acc),
        ("stop reason", status.stop_reason or "-"),
    ]
    if status.dataset:
        rows.append(("dataset", status.dataset))
        rows += [(f"file ({kind})", path) for kind, path in status.files.items()]
    else:
        rows.append(("dataset", "not written yet (the run writes it when it finishes)"))
    if status.checkpoint:
        rows.append(("checkpoint", status.checkpoint))
    if status.updated_at:
        rows.append(("phase since", status.updated_at))
    if status.error:
        rows.append(("error", status.error))
    rows += [("warning", w) for w in status.warnings]
    if status.phase == "interrupted":
        rows.append(("next", "prefloop run MANIFEST --output RUN_DIR --resume continues it"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n"


def _dataset_location(run_dir: Path, files: dict[str, str]) -> str | None:
    if (run_dir / "README.md").is_file():  # a dataset card: load_dataset(run_dir) reads it
        return str(run_dir)
    return files.get("jsonl") or files.get("parquet")


def _phase(recorded: dict[str, Any], summary: dict[str, Any], state: Any) -> Phase:
    phase = recorded.get("phase")
    if phase == "running":
        return "running" if _alive(recorded.get("pid"), recorded.get("host")) else "interrupted"
    if phase in ("finished", "failed", "interrupted"):
        return phase
    if summary:
        return "finished"
    return "interrupted" if state is not None else "not started"


def _alive(pid: Any, host: Any) -> bool:
    """Whether the recorded process still runs (assumed so when it ran on another host)."""
    if not isinstance(pid, int) or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _latest_state(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    pointer = run_dir / CHECKPOINT_POINTER
    if not pointer.exists():
        return None, None
    ckpt = pointer.parent / pointer.read_text().strip()
    state = _read_json(ckpt / "state.json")
    return state, str(ckpt) if state is not None else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: unreadable ({e})") from None
    return value if isinstance(value, dict) else None


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as e:
        raise RunDirError(f"{path}: unreadable ({e})") from None
    return value if isinstance(value, dict) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None
