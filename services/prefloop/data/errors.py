"""Errors for data files: every problem names the file, the row and the field.

A broken row is never dropped silently. Readers collect the problems of a whole file (up to
``MAX_REPORTED_PROBLEMS``) and raise one :class:`DataError` listing them, so a user fixes a file in
one pass instead of one error per run. Each problem renders as ``<where>: <field> <message>``,
e.g. ``data/x.jsonl:17: responses[3].score must be a number, got 'abc'``.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REPORTED_PROBLEMS = 20
"""How many problems one :class:`DataError` spells out; the rest are counted."""


@dataclass(frozen=True)
class DataProblem:
    """One thing wrong with one row.

    Attributes:
        where: the location, ``path:line`` for JSONL (1-based) or ``path[row i]`` for Parquet and
            Hugging Face data sets (0-based, like their indexing).
        message: what is wrong, starting with the field, e.g. ``responses[3].score must be ...``.
    """

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class DataError(ValueError):
    """A data file could not be read or written; ``problems`` lists every reported row problem."""

    def __init__(self, message: str, problems: tuple[DataProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class ProblemCollector:
    """Gathers row problems while a file is read, then raises them all as one :class:`DataError`.

    Why: reading continues past a bad row so the error lists every problem (up to a cap) at once.
    """

    def __init__(self, path: str, *, limit: int = MAX_REPORTED_PROBLEMS) -> None:
        self.path = path
        self.limit = limit
        self.problems: list[DataProblem] = []
        self.total = 0

    def add(self, where: str, message: str) -> None:
        """Record one problem; only the first ``limit`` are kept, all are counted."""
        self.total += 1
        if len(self.problems) < self.limit:
            self.problems.append(DataProblem(where, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        """Raise one :class:`DataError` listing the collected problems, if there are any."""
        if not self.total:
            return
        noun = "problem" if self.total == 1 else "problems"
        lines = [f"{self.total} {noun} in {self.path}:"]
        lines.extend(f"  {p}" for p in self.problems)
        rest = self.total - len(self.problems)
        if rest > 0:
            lines.append(f"  ... and {rest} more")
        raise DataError("\n".join(lines), tuple(self.problems))
