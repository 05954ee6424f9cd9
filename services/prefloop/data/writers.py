"""Write the output preference data set (JSONL and Parquet) atomically, and read it back.

Rows are :meth:`PreferencePair.to_row` dicts: TRL's conversational format (``prompt``, ``chosen``,
``rejected`` as ``{role, content}`` message lists) plus scalar columns. Files are written to a
temporary file in the target directory, flushed to disk and moved into place with ``os.replace``
(:mod:`prefloop.data.atomic`: mode 0666 minus the umask, directory fsynced), so a reader (or a
crash) never sees half a file. Where the files of a run directory go, and its dataset card, is
:mod:`prefloop.data.run_dataset`. Parquet uses an explicit Arrow schema for the
known columns, so a column that is ``None`` in every row (``chosen_score`` of a live judge,
``rationale``) still gets its real type, and :func:`read_dataset` returns exactly the rows written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prefloop.data.atomic import atomic_target, fsync_dir
from prefloop.data.errors import DataError, ProblemCollector
from prefloop.data.formats import detect_format, iter_raw_rows

OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "parquet")
MESSAGE_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected")


def _known_schema() -> dict[str, Any]:
    """Arrow type of every column prefloop writes (see :meth:`PreferencePair.to_row`)."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return {
        "pair_id": pa.string(),
        "prompt_id": pa.string(),
        "prompt": message,
        "chosen": message,
        "rejected": message,
        "chosen_model": pa.string(),
        "rejected_model": pa.string(),
        "chosen_score": pa.float64(),
        "rejected_score": pa.float64(),
        "probability_chosen": pa.float64(),
        "margin": pa.float64(),
        "tie": pa.bool_(),
        "label_source": pa.string(),
        "round": pa.int64(),
        "acquisition": pa.string(),
        "judge": pa.string(),
        "run": pa.string(),
        "rationale": pa.string(),
    }


def _json_lines(rows: Iterable[dict[str, Any]], where: str) -> list[str]:
    lines: list[str] = []
    for i, row in enumerate(rows):
        try:
            lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: row {i} cannot be written as JSON: {exc}") from exc
    return lines


def write_jsonl_atomic(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines to ``path``, replacing it atomically.

    Why: checkpoints and outputs must be either the old or the new file after a crash.
    Non-finite floats are rejected (they are not valid JSON).
    """
    path = Path(path)
    lines = _json_lines(rows, str(path))
    with atomic_target(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(lines)
    return path


def append_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> int:
    """Append ``rows`` as JSON lines to ``path`` (created if missing) and fsync; returns the count.

    Why: a growing log of labelled pairs is appended round by round. The batch is encoded first
    and written in one call, and a file whose last line is incomplete (an interrupted earlier
    write) is refused rather than extended into an unreadable line.
    """
    path = Path(path)
    lines = _json_lines(rows, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    if not created and path.stat().st_size > 0:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                raise DataError(
                    f"{path}: the last line is incomplete (an earlier write was interrupted); "
                    "repair or remove it before appending"
                )
    with path.open("a", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)
    return len(rows)


def _check_messages(rows: Sequence[dict[str, Any]], where: str) -> None:
    problems = ProblemCollector(where)
    for i, row in enumerate(rows):
        for column in MESSAGE_COLUMNS:
            if column not in row:
                continue
            value = row[column]
            if not isinstance(value, list):
                problems.add(f"{where}[row {i}]", f"{column} must be a list of messages")
                continue
            for j, msg in enumerate(value):
                ok = (
                    isinstance(msg, dict)
                    and set(msg) == {"role", "content"}
                    and all(isinstance(v, str) for v in msg.values())
                )
                if not ok:
                    problems.add(
                        f"{where}[row {i}]",
                        f"{column}[{j}] must be a {{role, content}} dict of strings, "
                        f"got {msg!r:.80}",
                    )
    problems.raise_if_any()


def arrow_table(rows: Sequence[dict[str, Any]], where: str = "<rows>") -> Any:
    """The rows as a ``pyarrow.Table``: known columns typed explicitly, others inferred.

    Why: type inference alone makes an all-``None`` column a ``null`` column and loses its type;
    the explicit schema keeps every output file loadable with the same schema.
    """
    import pyarrow as pa

    known = _known_schema()
    if not rows:
        return pa.Table.from_pylist([], schema=pa.schema(list(known.items())))
    columns = list(rows[0])
    expected = set(columns)
    for i, row in enumerate(rows):
        if set(row) != expected:
            missing = sorted(expected - set(row))
            extra = sorted(set(row) - expected)
            raise DataError(
                f"{where}: row {i} has different columns from row 0 "
                f"(missing {missing}, extra {extra}); every row needs the same columns"
            )
    _check_messages(rows, where)
    arrays = []
    fields = []
    for column in columns:
        values = [row[column] for row in rows]
        arrow_type = known.get(column)
        try:
            array = pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            bad = _first_bad_row(values, arrow_type)
            raise DataError(
                f"{where}: column {column!r} (row {bad}) cannot be stored as "
                f"{arrow_type or 'one Arrow type'}: {exc}"
            ) from exc
        arrays.append(array)
        fields.append(pa.field(column, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _first_bad_row(values: list[Any], arrow_type: Any) -> int:
    import pyarrow as pa

    for i, value in enumerate(values):
        try:
            pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return i
    return 0


def write_parquet_atomic(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` to a Parquet file at ``path``, replacing it atomically."""
    import pyarrow.parquet as pq

    path = Path(path)
    table = arrow_table(rows, str(path))
    with atomic_target(path) as tmp:
        pq.write_table(table, tmp)
    return path


def write_dataset(
    rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    formats: tuple[str, ...] = OUTPUT_FORMATS,
    stem: str = "dataset",
) -> dict[str, Path]:
    """Write the preference data set as ``<out_dir>/<stem>.jsonl`` and/or ``.parquet``.

    Why: the run's product must load directly into TRL (``load_dataset("json"/"parquet", ...)``,
    then DPO/reward training) and never be seen half-written.

    Returns:
        The written path per format, e.g. ``{"jsonl": .../dataset.jsonl, "parquet": ...}``.
    """
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {OUTPUT_FORMATS}, got {formats!r}")
    if not stem or "/" in stem or os.sep in stem:
        raise ValueError(f"stem must be a plain file name without directories, got {stem!r}")
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    if "parquet" in formats:
        written["parquet"] = write_parquet_atomic(out_dir / f"{stem}.parquet", rows)
    if "jsonl" in formats:
        written["jsonl"] = write_jsonl_atomic(out_dir / f"{stem}.jsonl", rows)
    return {f: written[f] for f in formats}


def read_dataset(path: str | Path) -> list[dict[str, Any]]:
    """Read rows written by :func:`write_dataset` (JSONL, Parquet or a ``save_to_disk`` folder).

    Why: resuming a run and evaluating its output need the rows back exactly as written.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    file_format = detect_format(path)
    if file_format == "parquet":
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    if file_format == "hf_disk":
        from datasets import load_from_disk

        return [dict(r) for r in load_from_disk(str(path))]
    problems = ProblemCollector(str(path))
    out: list[dict[str, Any]] = []
    for raw in iter_raw_rows(path, "jsonl"):
        if raw.row is None:
            problems.add(raw.where, raw.error or "unreadable row")
        else:
            out.append(raw.row)
    problems.raise_if_any()
    return out
