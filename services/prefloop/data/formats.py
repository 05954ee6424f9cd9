"""Raw row sources: JSONL (optionally gzipped), Parquet and Hugging Face ``save_to_disk`` folders.

This module only turns a file into a stream of ``RawRow``s (a dict, or the reason it is not one,
with its location). What a row means is decided in :mod:`prefloop.data.rows`. Locations are
``path:line`` (1-based) for JSONL and ``path[row i]`` (0-based) for Parquet and Hugging Face data
sets, so error messages point at what an editor or ``dataset[i]`` shows.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from prefloop.data.errors import DataError

FileFormat = Literal["jsonl", "parquet", "hf_disk"]
FormatChoice = Literal["auto", "jsonl", "parquet", "hf_disk"]
FORMATS: tuple[FileFormat, ...] = ("jsonl", "parquet", "hf_disk")

_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class RawRow:
    """One row as stored: ``row`` is the decoded object, or ``None`` with ``error`` saying why."""

    where: str
    row: dict[str, Any] | None
    error: str | None = None


def detect_format(path: Path) -> FileFormat:
    """The format of ``path`` from its suffix, or ``hf_disk`` for a directory.

    Why: users pass a path and expect the reader to know what it is; an unknown suffix is an
    error rather than a guess, so a CSV is never half-parsed as JSON.
    """
    if path.is_dir():
        return "hf_disk"
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise DataError(
        f"{path}: cannot tell the format from the name; expected a directory saved with "
        f"datasets' save_to_disk, or a file ending in {', '.join(_JSONL_SUFFIXES)} (JSONL) or "
        f"{', '.join(_PARQUET_SUFFIXES)} (Parquet); or pass format= explicitly"
    )


def iter_raw_rows(path: Path, file_format: FileFormat) -> Iterator[RawRow]:
    """Yield every row of ``path`` in file order, with its location.

    Why: one loop in the reader handles all formats; undecodable rows are yielded as problems
    instead of stopping the read, so every broken row gets reported.
    """
    if file_format == "jsonl":
        yield from _iter_jsonl(path)
    elif file_format == "parquet":
        yield from _iter_parquet(path)
    elif file_format == "hf_disk":
        yield from _iter_hf_disk(path)
    else:
        raise ValueError(f"unknown file format {file_format!r}; expected one of {FORMATS}")


def _open_binary(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _iter_jsonl(path: Path) -> Iterator[RawRow]:
    if not path.is_file():
        raise DataError(f"{path}: not a file (expected a JSONL file)")
    with _open_binary(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                yield RawRow(where, None, reason)
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRow(where, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(value, dict):
                kind = type(value).__name__
                yield RawRow(where, None, f"row must be a JSON object, got a {kind}")
                continue
            yield RawRow(where, value)


def _iter_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: not a file (expected a Parquet file)")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from exc
    index = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            yield RawRow(f"{path}[row {index}]", row)
            index += 1


def _iter_hf_disk(path: Path) -> Iterator[RawRow]:
    from datasets import Dataset, DatasetDict, load_from_disk

    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a data set saved with save_to_disk)")
    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot load with datasets.load_from_disk: {exc}") from exc
    if isinstance(loaded, DatasetDict):
        splits = list(loaded.keys())
        if len(splits) != 1:
            raise DataError(
                f"{path}: holds several splits ({', '.join(splits)}); pass one split's directory, "
                f"e.g. {path / splits[0]}"
            )
        loaded = loaded[splits[0]]
    if not isinstance(loaded, Dataset):
        raise DataError(f"{path}: expected a datasets.Dataset, got {type(loaded).__name__}")
    for index, row in enumerate(loaded):
        yield RawRow(f"{path}[row {index}]", dict(row))
