"""The durable label queue of the human judge: pairs waiting for people, and their votes.

Every label, undo and drop is one JSON line appended to ``<run>/human-labels/events.jsonl`` and
fsynced before the page is answered, so a reload, a browser crash or a server restart loses
nothing: on start the log is replayed (a line torn by a crash is cut off first). Votes are keyed
by the engine's pair id, which is deterministic, so a resumed run that asks the same pairs again
finds their votes and never shows a pair to someone who already labelled it.

A pair needs ``annotators_per_pair`` votes (A, B or tie; a skip marks the pair seen by that person
but is no vote). Pairs are handed out oldest batch first, so pairs carried over from a timed-out
round come before new ones. Undo removes a person's last label of the open batch while the round
still waits for it. One :class:`threading.Condition` guards the state: the web server's threads
give labels, the engine's thread waits for them.

Which side the page shows on the left is drawn per (pair, annotator) from the run's seed and
recorded with the vote (``a_on_left``), so position bias can be measured.

``listeners`` hear of every event once it is on disk (service mode publishes them to the run's
judgements topic, :mod:`prefloop.rpc.human_judge_service`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from prefloop.data.atomic import atomic_write_bytes, fsync_dir
from prefloop.judge.base import JudgeRequest

Choice = Literal["a", "b", "tie", "skip"]
"""A person's answer; ``a``/``b`` name the request's responses, not the screen sides."""
CHOICES: tuple[str, ...] = get_args(Choice)
EVENTS_FILE = "events.jsonl"


class LabelError(ValueError):
    """A label cannot be taken (unknown or closed pair, labelled twice, bad choice)."""


@dataclass(frozen=True)
class Vote:
    """One person's label of one pair, as logged."""

    pair_id: str
    annotator: str
    choice: str
    a_on_left: bool
    batch: int
    rationale: str | None = None
    unix_time: float = 0.0


@dataclass
class QueuedPair:
    """A pair asked of the people and what they said so far."""

    request: JudgeRequest
    batch: int
    votes: dict[str, Vote] = field(default_factory=dict)
    closed: bool = False
    """The engine has taken its verdict (or given up on it); no more labels or undos."""


class LabelQueue:
    """Pairs waiting for votes, persisted as an append-only, fsynced event log (see module)."""

    def __init__(self, directory: Path | None, *, annotators_per_pair: int, seed: int) -> None:
        self.directory = directory
        self.annotators_per_pair = annotators_per_pair
        self.seed = seed
        self.changed = threading.Condition()
        self.pairs: dict[str, QueuedPair] = {}
        self.batch = 0
        self.asked: list[str] = []
        """The pair ids of the open batch, carried ones included (what progress counts)."""
        self._logged: dict[str, dict[str, Vote]] = {}
        self._dropped: set[str] = set()
        self._undo: dict[str, list[str]] = {}
        self.listeners: list[Callable[[dict[str, Any], JudgeRequest], None]] = []
        """Called with each label, undo and drop event once it is fsynced, and its pair."""
        if directory is not None:
            self._replay(directory / EVENTS_FILE)

    # -- durability ---------------------------------------------------------------------------
    def _replay(self, path: Path) -> None:
        """Rebuild votes and drops from the log; a torn last line (a crash mid-write) is cut."""
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(path, data)
        for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                event = json.loads(line)
                self._apply(event)
            except (ValueError, KeyError, TypeError) as e:
                raise LabelError(
                    f"{path}:{n}: unreadable label event ({e}); fix or remove it"
                ) from None

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "label":
            vote = Vote(**{k: v for k, v in event.items() if k != "event"})
            self._logged.setdefault(vote.pair_id, {})[vote.annotator] = vote
            self.batch = max(self.batch, vote.batch)
        elif kind == "undo":
            self._logged.get(event["pair_id"], {}).pop(event["annotator"], None)
        elif kind == "drop":
            self._dropped.add(event["pair_id"])
        else:
            raise KeyError(f"unknown event {kind!r}")

    def _append(self, event: dict[str, Any]) -> None:
        """Append one event line and fsync it before anyone is told it happened."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / EVENTS_FILE
        new = not path.exists()
        line = (json.dumps(event, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.directory)

    # -- the engine's side --------------------------------------------------------------------
    def ask(self, requests: list[JudgeRequest]) -> int:
        """Queue ``requests`` as a new batch (votes already logged for them count); its number."""
        with self.changed:
            self.batch += 1
            self.asked = list(dict.fromkeys(r.pair_id for r in requests))
            self._undo = {}
            for req in requests:
                known = self.pairs.get(req.pair_id)
                if known is not None and not known.closed:
                    continue  # carried and asked again: keep its place and votes
                votes = dict(self._logged.get(req.pair_id, {}))
                self.pairs[req.pair_id] = QueuedPair(req, self.batch, votes)
            self.changed.notify_all()
            return self.batch

    def decided(self, pair_id: str) -> bool:
        """Whether the pair has its ``annotators_per_pair`` votes (skips do not count)."""
        return len(self.votes_of(pair_id)) >= self.annotators_per_pair

    def dropped(self, pair_id: str) -> bool:
        """Whether the pair was dropped on a timeout (it is never asked of anyone again)."""
        return pair_id in self._dropped

    def votes_of(self, pair_id: str) -> list[Vote]:
        """The pair's votes (A, B or tie) in the order given."""
        pair = self.pairs.get(pair_id)
        votes = pair.votes.values() if pair else self._logged.get(pair_id, {}).values()
        return sorted((v for v in votes if v.choice != "skip"), key=lambda v: v.unix_time)

    def close(self, pair_ids: list[str], *, drop: bool) -> None:
        """The engine is done with these pairs; undecided ones are dropped or stay open (carry)."""
        with self.changed:
            for pid in pair_ids:
                pair = self.pairs.get(pid)
                if pair is None:
                    continue
                if self.decided(pid):
                    pair.closed = True
                elif drop and pid not in self._dropped:
                    event = {"event": "drop", "pair_id": pid, "unix_time": time.time()}
                    self._append(event)
                    self._dropped.add(pid)
                    pair.closed = True
                    self._notify(event, pair.request)
            self.changed.notify_all()

    # -- the people's side --------------------------------------------------------------------
    def open_pairs(self) -> list[QueuedPair]:
        """Pairs still waiting for votes, oldest batch first."""
        return sorted(
            (
                p
                for pid, p in self.pairs.items()
                if not p.closed and not self.decided(pid) and pid not in self._dropped
            ),
            key=lambda p: p.batch,
        )

    def next_for(self, annotator: str) -> QueuedPair | None:
        """The next pair to show ``annotator``: open and not yet labelled (or skipped) by them."""
        with self.changed:
            return next((p for p in self.open_pairs() if annotator not in p.votes), None)

    def a_on_left(self, pair_id: str, annotator: str) -> bool:
        """Whether response ``a`` is shown on the left to ``annotator`` (seeded, per pair)."""
        digest = hashlib.sha256(f"{self.seed}/{pair_id}/{annotator}".encode()).digest()
        return digest[0] % 2 == 0

    def give(self, annotator: str, pair_id: str, choice: str, rationale: str | None) -> Vote:
        """Record a label (logged and fsynced first); refuses a closed pair or a second label."""
        if choice not in CHOICES:
            raise LabelError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
        with self.changed:
            pair = self.pairs.get(pair_id)
            if pair is None or pair.closed or pair_id in self._dropped:
                raise LabelError(f"pair {pair_id} is not waiting for labels")
            if annotator in pair.votes:
                raise LabelError(f"{annotator} already labelled pair {pair_id}")
            vote = Vote(
                pair_id=pair_id,
                annotator=annotator,
                choice=choice,
                a_on_left=self.a_on_left(pair_id, annotator),
                batch=self.batch,
                rationale=(rationale or "").strip() or None,
                unix_time=time.time(),
            )
            event = {"event": "label", **asdict(vote)}
            self._append(event)
            pair.votes[annotator] = vote
            self._logged.setdefault(pair_id, {})[annotator] = vote
            self._undo.setdefault(annotator, []).append(pair_id)
            self.changed.notify_all()
        self._notify(event, pair.request)
        return vote

    def undo(self, annotator: str) -> str | None:
        """Take back ``annotator``'s last label of the open batch; the pair id, or None."""
        with self.changed:
            stack = self._undo.get(annotator, [])
            while stack:
                pid = stack.pop()
                pair = self.pairs.get(pid)
                if pair is None or pair.closed or annotator not in pair.votes:
                    continue
                event = {
                    "event": "undo",
                    "pair_id": pid,
                    "annotator": annotator,
                    "unix_time": time.time(),
                }
                self._append(event)
                del pair.votes[annotator]
                self._logged.get(pid, {}).pop(annotator, None)
                self.changed.notify_all()
                break
            else:
                return None
        self._notify(event, pair.request)
        return pid

    def _notify(self, event: dict[str, Any], request: JudgeRequest) -> None:
        """Tell the listeners (the judge service's vote publisher) of an event now on disk.

        Called after the lock is released for labels and undos, so a slow listener never holds
        up other people's labels or the engine's wait.
        """
        for listener in self.listeners:
            listener(event, request)

    def progress(self, annotator: str) -> dict[str, int]:
        """This batch's pairs asked (carried ones too) and decided, and what ``annotator``
        labelled in it."""
        with self.changed:
            mine = sum(
                1
                for p in self.pairs.values()
                if (v := p.votes.get(annotator)) and v.batch == self.batch
            )
            return {
                "batch": self.batch,
                "asked": len(self.asked),
                "decided": sum(self.decided(pid) for pid in self.asked),
                "open": len(self.open_pairs()),
                "mine": mine,
                "decided_total": sum(
                    1 for pid in self._logged if self.decided(pid) and pid not in self._dropped
                ),
            }

    def tally(self, pair_id: str) -> Counter[str]:
        """Votes per choice (a, b, tie) of a pair."""
        return Counter(v.choice for v in self.votes_of(pair_id))
