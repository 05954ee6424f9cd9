"""The judge service's durable verdict log: one fsynced JSONL line per verdict, one owner.

``<state-dir>/judge-<run>.jsonl`` holds every verdict the judge service ever paid for. Each line
is the verdict (:func:`~prefloop.rpc.convert.judgement_to_dict`) plus what keys and checks it:

- ``judge_config``: a fingerprint of the run's judge configuration (``spec.judge`` and the run
  seed). Verdicts are keyed by (judge config, pair id): a verdict of another configuration is
  kept in the file but never answers a request of this one. Lines written before the field
  existed count as the current configuration.
- ``a_key``: the stable id of the response that was ``a`` when it was judged. Pair ids are
  order-free, so the same pair may come back as (b, a); its recorded verdict is then turned
  around (winner, probability, scores and per-side aspects swapped) before it is returned.
- ``prompt_key``: the stable id of the prompt's content. The pair id names the prompt by id
  only; a request that reuses a judged pair id with another prompt text is refused instead of
  being answered with the verdict for the old text.

One process at a time: the log is held with an exclusive, non-blocking ``fcntl.flock`` on
``judge-<run>.lock`` (which holds the owner's pid) for the life of the service. A second judge
started on the same state directory fails at start, naming the directory and the holder's pid,
instead of keeping a second, diverging copy of the verdicts. The kernel releases the lock when
the owner exits or is killed, so a crashed judge never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefloop.data.records import PromptItem, stable_id
from prefloop.judge.base import Judgement, JudgeRequest, response_key, swap_sides
from prefloop.rpc.convert import RequestError, judgement_from_dict, judgement_to_dict
from prefloop.rpc.server import StartupError

log = logging.getLogger("prefloop.rpc.judge")


def prompt_key(item: PromptItem) -> str:
    """The stable id of a prompt's content (plain text or chat messages)."""
    return stable_id("prompt", json.dumps(item.prompt, sort_keys=True))


def oriented(verdict: Judgement, recorded_a: str | None, request: JudgeRequest) -> Judgement:
    """The recorded verdict as seen from the request's order of the two responses.

    Why: the pair id is order-free, so (a, b) and (b, a) share one record; ``winner`` and
    ``probability_a`` refer to the order the pair was judged in and must be turned around.
    """
    if recorded_a is None or recorded_a == response_key(request.a):
        return verdict
    return replace(
        verdict,
        winner=1 - verdict.winner,
        probability_a=1.0 - verdict.probability_a,
        score_a=verdict.score_b,
        score_b=verdict.score_a,
        aspects=swap_sides(verdict.aspects),
    )


@dataclass(frozen=True)
class Entry:
    """A recorded verdict with the orientation and prompt it was given for."""

    verdict: Judgement
    a_key: str | None
    prompt_key: str | None


class VerdictLog:
    """Append-only JSONL of verdicts, reloaded on start, held by one process (see module doc).

    Args:
        path: the JSONL file (created with its directory if missing).
        judge_config: fingerprint of the judge configuration this process judges with.

    Raises:
        StartupError: another process holds the log.
    """

    def __init__(self, path: Path, judge_config: str) -> None:
        self.path = path
        self.judge_config = judge_config
        self.records: dict[str, Entry] = {}
        self.other_configs = 0
        """Lines of other judge configurations (kept in the file, not used)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = path.with_suffix(".lock")
        self._lock_fd: int | None = self._acquire()
        self._load()

    def _acquire(self) -> int:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"judge state dir {self.path.parent} is in use by another judge "
                f"(pid {holder}, lock {self.lock_path.name}); stop that process or start this "
                "one with another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def close(self) -> None:
        """Release the lock (the process exiting does the same)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        good = raw.rfind(b"\n") + 1
        if good < len(raw):  # a line torn by a crash mid-write: drop it (it was never replied)
            with self.path.open("r+b") as fh:
                fh.truncate(good)
        for line in raw[:good].splitlines():
            if line.strip():
                d: dict[str, Any] = json.loads(line)
                if d.get("judge_config", self.judge_config) != self.judge_config:
                    self.other_configs += 1
                    continue
                j = judgement_from_dict(d)
                self.records[j.pair_id] = Entry(j, d.get("a_key"), d.get("prompt_key"))
        if self.other_configs:
            log.warning(
                "%s: %d verdict(s) of another judge configuration are kept but not used",
                self.path,
                self.other_configs,
            )

    def check_prompts(self, requests: list[JudgeRequest]) -> None:
        """Refuse a recorded pair asked again with another prompt text under the same id."""
        for i, r in enumerate(requests):
            entry = self.records.get(r.pair_id)
            if entry is not None and entry.prompt_key not in (None, prompt_key(r.item)):
                raise RequestError(
                    f"pairs[{i}].prompt: pair {r.pair_id} was judged for another text of prompt "
                    f"{r.item.prompt_id!r}; a prompt id must keep its text within a run"
                )

    def answer(self, request: JudgeRequest) -> Judgement:
        """The recorded verdict of a request's pair, in the request's order."""
        entry = self.records[request.pair_id]
        return oriented(entry.verdict, entry.a_key, request)

    def append(self, requests: list[JudgeRequest], verdicts: list[Judgement]) -> None:
        """Persist the verdicts of ``requests`` (fsync) before anyone sees them."""
        if not verdicts:
            return
        entries = [
            Entry(v, response_key(r.a), prompt_key(r.item))
            for r, v in zip(requests, verdicts, strict=True)
        ]
        text = "".join(
            json.dumps(
                {
                    **judgement_to_dict(e.verdict),
                    "judge_config": self.judge_config,
                    "a_key": e.a_key,
                    "prompt_key": e.prompt_key,
                },
                sort_keys=True,
            )
            + "\n"
            for e in entries
        )
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        for e in entries:
            self.records[e.verdict.pair_id] = e
