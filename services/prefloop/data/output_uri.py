"""Copy a finished run's outputs to ``spec.output.uri`` (fsspec: ``file://``, ``s3://``, ``gs://``).

On a cluster the run directory lives on a volume; ``output.uri`` gets the dataset out: every
file of the run directory is copied under the URI with the same relative path, except the
working state a resumed run needs and nobody else does (``checkpoints/``, ``features/``, the
runner's ``status.json`` and temporary files). ``summary.json`` is written last, so its
presence marks a complete copy. Copying again overwrites with the same bytes (a retried
driver may copy twice).

``file://`` works with fsspec alone; ``s3://`` needs ``s3fs`` (extra ``prefloop[s3]``) and
``gs://`` needs ``gcsfs`` (extra ``prefloop[gcs]``), with credentials from the environment
(the operator passes ``output.credentialsSecret`` to the driver as variables and files).
"""

from __future__ import annotations

from pathlib import Path

SKIPPED_DIRS = frozenset({"checkpoints", "features", "state"})
SKIPPED_FILES = frozenset({"status.json"})
LAST = "summary.json"


class OutputCopyError(RuntimeError):
    """The outputs could not be copied to ``output.uri`` (missing backend, denied, ...)."""


def files_to_copy(run_dir: Path) -> list[Path]:
    """The run directory's output files (relative paths), ``summary.json`` last."""
    picked = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] in SKIPPED_DIRS or rel.name in SKIPPED_FILES:
            continue
        if any(part.startswith(".") for part in rel.parts):  # temporary files of atomic writes
            continue
        picked.append(rel)
    return sorted(picked, key=lambda rel: (rel.as_posix() == LAST, rel.as_posix()))


def copy_run_outputs(run_dir: Path, uri: str) -> list[str]:
    """Copy the outputs of ``run_dir`` under ``uri``; returns the destination URLs written.

    Why: a cluster run's volume is not where its users read datasets; object storage is.
    """
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except ImportError as exc:
        scheme = uri.split("://", 1)[0]
        extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(scheme, scheme)
        raise OutputCopyError(
            f"spec.output.uri {uri!r}: fsspec has no backend for {scheme}:// here ({exc}); "
            f"install it with pip install 'prefloop[{extra}]'"
        ) from exc
    root = root.rstrip("/")
    written = []
    try:
        fs.makedirs(root, exist_ok=True)
        for rel in files_to_copy(run_dir):
            target = f"{root}/{rel.as_posix()}"
            if len(rel.parts) > 1:
                fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(run_dir / rel), target)
            written.append(fs.unstrip_protocol(target))
    except OSError as exc:
        raise OutputCopyError(f"copying {run_dir} to {uri} failed: {exc}") from exc
    return written
