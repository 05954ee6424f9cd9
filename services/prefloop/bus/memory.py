"""An in-process :class:`~prefloop.bus.base.Bus`: the embedded mode's data plane.

The embedded run keeps every role in one process, but publishes the same records to the same
topics as the service mode, so exporting, replaying and idempotent consumption behave alike in
both. Each topic is an append-only list guarded by one lock; a :class:`MemorySubscription` keeps
a cursor into it and waits on a condition variable for new records. Values are deep-copied
through JSON on publish, so a caller mutating its dicts afterwards cannot change the log, and a
value that Kafka could not carry (not JSON) fails here too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator

from prefloop.bus.base import BusError, Record


def _frozen_copy(record: Record) -> Record:
    if not isinstance(record, Record):
        raise BusError(f"publish expects Record objects, got {type(record).__name__}")
    try:
        value = json.loads(json.dumps(record.value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BusError(
            f"record {record.msg_id!r} (key {record.key!r}) cannot be encoded as JSON: {exc}"
        ) from exc
    return Record(str(record.key), str(record.msg_id), value)


class InMemoryBus:
    """A thread-safe, in-process log of topics with the semantics of the Kafka bus."""

    def __init__(self) -> None:
        self._topics: dict[str, list[Record]] = {}
        self._changed = threading.Condition()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the in-memory bus is closed")

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet (idempotent)."""
        with self._changed:
            self._check_open()
            for topic in topics:
                self._topics.setdefault(topic, [])

    def publish(self, topic: str, records: Iterable[Record]) -> None:
        """Append the records atomically (all of them or, on a bad record, none)."""
        copies = [_frozen_copy(r) for r in records]
        with self._changed:
            self._check_open()
            self._topics.setdefault(topic, []).extend(copies)
            self._changed.notify_all()

    def read_all(self, topic: str, timeout_seconds: float = 5.0) -> Iterator[Record]:
        """Every record published to ``topic`` so far, in publication order."""
        with self._changed:
            self._check_open()
            snapshot = list(self._topics.get(topic, ()))
        return iter(snapshot)

    def subscribe(self, topic: str, *, from_beginning: bool = True) -> MemorySubscription:
        """Follow ``topic`` from its first record, or from the records published after now."""
        with self._changed:
            self._check_open()
            log = self._topics.setdefault(topic, [])
            start = 0 if from_beginning else len(log)
        return MemorySubscription(self, topic, start)

    def close(self) -> None:
        """Drop every topic and wake up waiting subscriptions."""
        with self._changed:
            self._closed = True
            self._topics.clear()
            self._changed.notify_all()

    # used by MemorySubscription
    def _wait_from(self, topic: str, cursor: int, timeout_seconds: float) -> list[Record]:
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        with self._changed:
            while True:
                self._check_open()
                log = self._topics.get(topic, [])
                if len(log) > cursor:
                    return log[cursor:]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)


class MemorySubscription:
    """A cursor into one topic of an :class:`InMemoryBus`."""

    def __init__(self, bus: InMemoryBus, topic: str, start: int) -> None:
        self._bus = bus
        self._topic = topic
        self._cursor = start
        self._closed = False

    def poll(self, timeout_seconds: float) -> list[Record]:
        """The records published since the last poll, waiting up to ``timeout_seconds``."""
        if self._closed:
            raise BusError(f"subscription to {self._topic} is closed")
        records = self._bus._wait_from(self._topic, self._cursor, timeout_seconds)
        self._cursor += len(records)
        return records

    def close(self) -> None:
        """Stop this cursor; the bus and other subscriptions are unaffected."""
        self._closed = True
