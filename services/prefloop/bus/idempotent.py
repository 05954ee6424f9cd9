"""Exactly-once effects on an at-least-once log: deterministic message ids and a dedup consumer.

Kafka delivers at least once: a producer retry, a service restarted mid-round or a replay from
the beginning hands a consumer the same record again. Every record therefore carries a
deterministic ``msg_id`` built from what it is about (run, kind, round, prompt, pair), so the same
fact published twice has the same id, and :class:`IdempotentConsumer` applies its handler once
per id. The seen-set is the consumer's only state: it is saved with the consumer's own
checkpoint (``seen_ids``/``mark_seen``), or rebuilt by replaying the topic from the beginning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prefloop.bus.base import Bus, Record, Subscription
from prefloop.data.records import stable_id

MSG_ID_LENGTH = 24
"""Hex digits of a message id (96 bits: no collision among billions of records)."""


def message_id(
    run: str,
    kind: str,
    *,
    round: int | None = None,
    prompt_id: str | None = None,
    pair_id: str | None = None,
    part: str | int | None = None,
) -> str:
    """The deterministic id of one fact: the same arguments give the same id in every process.

    Why: deduplication by id is what makes at-least-once delivery harmless; an id must not
    depend on when or by whom the record was produced, only on what it states.

    Args:
        run: the run name.
        kind: the topic kind (``completions``, ``scores``, ...).
        round: the round, if the fact belongs to one.
        prompt_id: the prompt, if the fact is about one.
        pair_id: the pair, if the fact is about one.
        part: anything else that distinguishes facts of the same kind (a response index, a
            checkpoint version).
    """
    if not run:
        raise ValueError("message_id: run must be a non-empty string")
    if not kind:
        raise ValueError("message_id: kind must be a non-empty string")
    if round is not None and round < 0:
        raise ValueError(f"message_id: round must be >= 0, got {round}")
    fields = [
        "-" if v is None else f"{name}={v}"
        for name, v in (("round", round), ("prompt", prompt_id), ("pair", pair_id), ("part", part))
    ]
    return stable_id("prefloop-msg", run, kind, *fields, length=MSG_ID_LENGTH)


class IdempotentConsumer:
    """Applies ``handler`` once per ``msg_id``, however often a record is delivered.

    A handler that raises leaves its record unseen, so the next delivery retries it. Thread-safe:
    concurrent deliveries of the same id run the handler once.
    """

    def __init__(self, handler: Callable[[Record], None], seen: Iterable[str] = ()) -> None:
        self._handler = handler
        self._seen: set[str] = set(seen)
        self._lock = threading.RLock()
        self.applied = 0
        """Records handed to the handler so far (its successful calls)."""
        self.skipped = 0
        """Deliveries ignored because their id had been applied already."""

    def handle(self, record: Record) -> bool:
        """Apply one record unless its id was seen; returns whether the handler ran."""
        with self._lock:
            if record.msg_id in self._seen:
                self.skipped += 1
                return False
            self._handler(record)
            self._seen.add(record.msg_id)
            self.applied += 1
            return True

    def handle_all(self, records: Iterable[Record]) -> int:
        """Apply a sequence of records in order; returns how many were new."""
        return sum(self.handle(r) for r in records)

    def replay(self, bus: Bus, topic: str, timeout_seconds: float = 5.0) -> int:
        """Apply every record of ``topic`` from the beginning; returns how many were new.

        Why: after a restart, replaying the topic through a consumer with an empty seen-set
        rebuilds its state; replaying through one with a full seen-set changes nothing.
        """
        return self.handle_all(bus.read_all(topic, timeout_seconds))

    def drain(self, subscription: Subscription, timeout_seconds: float) -> int:
        """Poll ``subscription`` once and apply what arrived; returns how many were new."""
        return self.handle_all(subscription.poll(timeout_seconds))

    def has_seen(self, msg_id: str) -> bool:
        """Whether a record with this id has been applied."""
        with self._lock:
            return msg_id in self._seen

    def mark_seen(self, msg_ids: Iterable[str]) -> None:
        """Record ids as applied without running the handler (state restored from a checkpoint)."""
        with self._lock:
            self._seen.update(msg_ids)

    def seen_ids(self) -> frozenset[str]:
        """The applied ids, to save beside the state the handler built."""
        with self._lock:
            return frozenset(self._seen)


def seen_ids_of(bus: Bus, topic: str, timeout_seconds: float = 5.0) -> set[str]:
    """Every ``msg_id`` on ``topic``: the seen-set of a consumer that has applied all of it.

    Why: a consumer whose effects are durable elsewhere (rows already written) restarts by
    marking the whole topic seen instead of applying it again.
    """
    return {r.msg_id for r in bus.read_all(topic, timeout_seconds)}
