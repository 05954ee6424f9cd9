"""Read prompts, scored response pools and offline pair pools into :class:`PromptItem`s.

One entry point, :func:`load_prompt_items`, reads JSONL, Parquet or a Hugging Face data set saved
with ``save_to_disk``, holding any of the three row kinds described in :mod:`prefloop.data.rows`.
It is strict: a broken row is never dropped; every problem (up to a cap) is reported in one
:class:`~prefloop.data.errors.DataError` naming the file, the line or row, and the field.

Example::

    items = load_prompt_items("data/alpacaeval/sample100.jsonl")          # 16 scored answers each
    pairs = load_prompt_items("data/hh_rlhf/harmless_dev.jsonl")          # 2 answers, scored 1/0
    todo = load_prompt_items("prompts.parquet", kind="prompts", limit=64)  # for a live generator
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from prefloop.data.errors import DataError, ProblemCollector
from prefloop.data.formats import FormatChoice, detect_format, iter_raw_rows
from prefloop.data.records import PromptItem
from prefloop.data.rows import KindChoice, RowKind, detect_kind, parse_row

_FORMAT_CHOICES = get_args(FormatChoice)
_KIND_CHOICES = get_args(KindChoice)


def load_prompt_items(
    path: str | Path,
    *,
    format: FormatChoice = "auto",
    kind: KindChoice = "auto",
    limit: int | None = None,
) -> list[PromptItem]:
    """Read a data file into prompt items, in file order.

    Why: every run starts from a file of prompts (with or without candidate answers and stored
    judge scores); reading it strictly, with every problem located, is what keeps a long active
    learning run from failing or silently losing prompts halfway.

    Args:
        path: a ``.jsonl`` / ``.jsonl.gz`` / ``.ndjson`` file, a ``.parquet`` file, or a directory
            written by ``datasets.Dataset.save_to_disk``.
        format: the file format; ``"auto"`` decides from the suffix (a directory is ``hf_disk``).
        kind: what a row holds: ``"responses"`` (prompt + at least 2 candidate answers, scores
            optional), ``"prompts"`` (prompt only; with an explicit ``kind="prompts"`` the answers
            of a responses file are ignored, to regenerate them live) or ``"pairs"`` (offline
            chosen/rejected pairs). ``"auto"`` takes the kind of the first row and requires every
            later row to be of the same kind.
        limit: read at most this many rows (``None``: all).

    Returns:
        One PromptItem per row. A missing ``prompt_id`` is ``stable_id`` of the prompt text (of the
        messages' JSON for a message-list prompt).

    Raises:
        DataError: the file is missing or unreadable, or rows are broken (invalid JSON, missing
            fields, wrong types, empty text, non-finite scores, fewer than 2 responses, duplicate
            prompt ids, a row of another kind); the message lists every problem as
            ``<file>:<line>: <field> <problem>`` (``<file>[row i]`` for Parquet and datasets).
        ValueError: ``format``, ``kind`` or ``limit`` is invalid.
    """
    if format not in _FORMAT_CHOICES:
        raise ValueError(f"format must be one of {_FORMAT_CHOICES}, got {format!r}")
    if kind not in _KIND_CHOICES:
        raise ValueError(f"kind must be one of {_KIND_CHOICES}, got {kind!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an integer >= 0, got {limit!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if limit == 0:
        return []
    file_format = detect_format(path) if format == "auto" else format

    problems = ProblemCollector(str(path))
    items: list[PromptItem] = []
    first_seen: dict[str, str] = {}
    file_kind: RowKind | None = None if kind == "auto" else kind
    kind_origin = "" if kind == "auto" else f"kind={kind!r} was requested"
    n_rows = 0
    for raw in iter_raw_rows(path, file_format):
        if limit is not None and n_rows >= limit:
            break
        n_rows += 1
        if raw.row is None:
            problems.add(raw.where, raw.error or "unreadable row")
            continue
        row_kind = detect_kind(raw.row)
        if kind == "auto":
            if row_kind is None:
                found = sorted(raw.row)[:10]
                problems.add(
                    raw.where,
                    "cannot tell the row kind: expected a 'prompt' field plus 'responses' / "
                    f"'completions' or 'chosen' / 'rejected'; found fields {found}",
                )
                continue
            if file_kind is None:
                file_kind = row_kind
                kind_origin = f"the first row ({raw.where}) is a {row_kind!r} row"
            elif row_kind != file_kind:
                problems.add(
                    raw.where,
                    f"row is a {row_kind!r} row but {kind_origin}; one file holds one kind "
                    "(or pass kind= explicitly)",
                )
                continue
        assert file_kind is not None
        errors: list[str] = []
        item = parse_row(raw.row, file_kind, errors)
        for message in errors:
            problems.add(raw.where, message)
        if item is None:
            continue
        previous = first_seen.get(item.prompt_id)
        if previous is not None:
            problems.add(
                raw.where,
                f"prompt_id {item.prompt_id!r} duplicates the one at {previous}; prompt ids "
                "must be unique within a file (rows without a prompt_id get one from the "
                "prompt text, so give a repeated prompt its own prompt_id)",
            )
            continue
        first_seen[item.prompt_id] = raw.where
        items.append(item)
    problems.raise_if_any()
    if n_rows == 0:
        raise DataError(f"{path}: holds no rows")
    return items
