"""The data-plane contract: a durable, keyed, replayable log of a run's records.

Topics are per run (``topic_name(run, kind)`` -> ``prefloop.<run>.<kind>``), records are keyed
by prompt id and carry a deterministic ``msg_id`` (run, round, prompt, pair). Delivery is
at-least-once, so consumers are idempotent: :class:`prefloop.bus.idempotent.IdempotentConsumer`
skips a ``msg_id`` it has already handled, which makes replaying a topic change nothing.

Two ways to read a topic:

- ``Bus.read_all(topic)``: a finite replay of everything published so far (export, rebuilding a
  consumer's state after a restart);
- ``Bus.subscribe(topic)``: a continuous :class:`Subscription` polled for new records (the trainer
  follows annotations, the reward service follows checkpoints).

The in-memory implementation (:mod:`prefloop.bus.memory`) serves the embedded mode and tests; the
Kafka implementation (:mod:`prefloop.bus.kafka_bus`, kafka-python) serves the services.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

TopicKind = Literal[
    "completions", "scores", "selections", "annotations", "judgements", "checkpoints"
]
TOPIC_KINDS: tuple[TopicKind, ...] = (
    "completions",
    "scores",
    "selections",
    "annotations",
    "judgements",
    "checkpoints",
)


_TOPIC_PART = re.compile(r"[A-Za-z0-9._-]{1,200}")


class BusError(RuntimeError):
    """The data plane failed: broker unreachable, a record too large, a malformed message."""


def topic_name(run: str, kind: TopicKind) -> str:
    """``prefloop.<run>.<kind>``: one topic per run and record kind."""
    if not _TOPIC_PART.fullmatch(run):
        raise ValueError(
            f"run name {run!r} cannot be part of a Kafka topic name: use 1-200 of [A-Za-z0-9._-]"
        )
    if kind not in TOPIC_KINDS:
        raise ValueError(f"topic kind must be one of {TOPIC_KINDS}, got {kind!r}")
    return f"prefloop.{run}.{kind}"


def run_topics(run: str) -> list[str]:
    """Every topic of a run, one per kind (what ``ensure_topics`` creates up front)."""
    return [topic_name(run, kind) for kind in TOPIC_KINDS]


@dataclass(frozen=True)
class Record:
    """One record on a topic.

    Attributes:
        key: partition key (the prompt id; the run name for run-wide records).
        msg_id: deterministic id; consumers deduplicate on it.
        value: JSON-serialisable payload.
    """

    key: str
    msg_id: str
    value: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps(
            {"key": self.key, "msg_id": self.msg_id, "value": self.value}, sort_keys=True
        ).encode()

    @staticmethod
    def decode(raw: bytes) -> Record:
        d = json.loads(raw)
        return Record(d["key"], d["msg_id"], d["value"])


class Subscription(Protocol):
    """A continuous reader of one topic: each record is returned by ``poll`` at least once."""

    def poll(self, timeout_seconds: float) -> list[Record]:
        """The records that arrived since the last poll; waits up to ``timeout_seconds`` for one.

        Returns an empty list when nothing arrived in time. Order is preserved per key.
        """
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    """Publish records to topics, replay topics from the beginning, follow them continuously."""

    def publish(self, topic: str, records: Iterable[Record]) -> None:
        """Durably append records (returns once the broker acknowledged them)."""
        ...

    def read_all(self, topic: str, timeout_seconds: float = 5.0) -> Iterator[Record]:
        """Every record of a topic from the start, in order per key (replay).

        ``timeout_seconds`` is the idle period: reading stops once no new record has arrived for
        that long (a log has no end marker; the in-memory bus returns at once).
        """
        ...

    def subscribe(self, topic: str, *, from_beginning: bool = True) -> Subscription:
        """Follow a topic: from its first record, or only what is published from now on."""
        ...

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet (idempotent, safe from several processes)."""
        ...

    def close(self) -> None: ...
