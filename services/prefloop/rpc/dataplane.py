"""The services' side of the Kafka data plane: what the trainer and the reward service consume.

With ``prefloop serve ... --kafka HOST:PORT``:

- the trainer follows the run's annotations topic through an :class:`AnnotationInbox`: a Train
  request names the round's pair ids, and the trainer waits (within the call's deadline) until
  every one of them has arrived, then trains on them in the request's order;
- the trainer announces each new reward-model version on the checkpoints topic
  (:func:`announce_checkpoint`): the head's state inline when small, else only the uri of the
  file in the shared checkpoint directory;
- the reward service follows the checkpoints topic through a :class:`CheckpointFeed` and loads
  the version a Score or Evaluate call asks for.

Both consumers read their topic from the beginning, so a restarted service rebuilds its view by
replay; the inbox deduplicates on ``msg_id`` (= pair id) with
:class:`~prefloop.bus.idempotent.IdempotentConsumer`, the feed keeps the last announcement per
version, so a replayed record changes nothing in either.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from prefloop.bus.base import Bus, Record, Subscription, topic_name
from prefloop.bus.idempotent import IdempotentConsumer
from prefloop.bus.payloads import (
    CheckpointEvent,
    annotation_from_value,
    checkpoint_from_value,
)
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import PreferencePair
from prefloop.rpc import handoff

INLINE_STATE_MAX_BYTES = 1024 * 1024
"""A head state up to this size travels inside the checkpoint record (no shared volume needed)."""
POLL_SECONDS = 0.2
"""The longest a single poll of a topic blocks (bounds how late a deadline is noticed)."""


class NotArrived(TimeoutError):
    """Records a call waits for did not arrive before its deadline (mapped to UNAVAILABLE)."""


class AnnotationInbox:
    """The labelled pairs the annotations topic delivered and no Train call has used yet.

    Not thread-safe: the trainer calls it under its own lock (one Train at a time).
    """

    def __init__(self, bus: Bus, run: str) -> None:
        self.bus = bus
        self.run = run
        self.topic = topic_name(run, "annotations")
        self._pairs: dict[str, PreferencePair] = {}
        self._subscription: Subscription | None = None
        self._consumer = IdempotentConsumer(self._store)

    def _store(self, record: Record) -> None:
        pair = annotation_from_value(record.value).labelled_pair()
        if pair.run != self.run:
            raise ValueError(f"{self.topic}: pair {pair.pair_id} belongs to run {pair.run!r}")
        self._pairs[pair.pair_id] = pair

    def _poll(self, timeout_seconds: float) -> int:
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.topic, from_beginning=True)
        return self._consumer.drain(self._subscription, timeout_seconds)

    def wait_for(self, pair_ids: Sequence[str], deadline: float) -> list[PreferencePair]:
        """The pairs with these ids, in this order, once all arrived (``time.monotonic`` deadline).

        Why: the engine publishes a round's pairs and then calls Train; the broker may deliver
        them a little later than the call arrives, or (after a restart) replay them.

        Raises:
            NotArrived: some ids were still missing at ``deadline`` (the message names them).
        """
        while True:
            missing = [p for p in pair_ids if p not in self._pairs]
            if not missing:
                return [self._pairs[p] for p in pair_ids]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotArrived(
                    f"pair_ids: {len(missing)} of {len(pair_ids)} pairs (first: {missing[0]}) "
                    f"have not arrived on {self.topic}"
                )
            self._poll(min(POLL_SECONDS, remaining))

    def discard(self, pair_ids: Sequence[str]) -> None:
        """Forget pairs a round has trained on (their ids stay seen, so replays skip them)."""
        for p in pair_ids:
            self._pairs.pop(p, None)

    def reset(self) -> None:
        """Start over from the topic's beginning (after a Restore re-opens trained rounds)."""
        self.close()
        self._pairs.clear()
        self._consumer = IdempotentConsumer(self._store)

    @property
    def pending(self) -> int:
        """Pairs received and not yet trained on."""
        return len(self._pairs)

    def close(self) -> None:
        """Close the subscription (the next wait re-opens it from the beginning)."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None


def encode_state(state: dict[str, Any]) -> bytes:
    """``torch.save`` bytes of a head's ``state_dict`` (the inline checkpoint payload)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def announce_checkpoint(
    publisher: RunPublisher, version: int, uri: str, head_state: dict[str, Any]
) -> None:
    """Announce ``version`` on the checkpoints topic: inline bytes if small, the uri always.

    Why: a reward replica without the shared volume can load a small head from the record
    alone; a large one is read from ``uri`` (the file the trainer published first).
    """
    state = encode_state(head_state)
    publisher.checkpoint(version, uri, state if len(state) <= INLINE_STATE_MAX_BYTES else None)


class CheckpointFeed:
    """The reward-model versions announced on the checkpoints topic (last announcement wins).

    Not thread-safe: the reward service polls it under its own lock.
    """

    def __init__(self, bus: Bus, run: str) -> None:
        self.bus = bus
        self.run = run
        self.topic = topic_name(run, "checkpoints")
        self.announced: dict[int, CheckpointEvent] = {}
        self.updates = 0
        """Announcements applied (a version re-announced after a Restore counts again)."""
        self._subscription: Subscription | None = None

    def poll(self, timeout_seconds: float) -> int:
        """Apply what arrived within ``timeout_seconds``; returns how many records."""
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.topic, from_beginning=True)
        records = self._subscription.poll(timeout_seconds)
        for record in records:
            event = checkpoint_from_value(record.value)
            self.announced[event.version] = event
            self.updates += 1
        return len(records)

    def pick(self, min_version: int) -> CheckpointEvent | None:
        """``min_version`` itself if announced, else the newest announced version above it.

        Why exactly ``min_version`` first: after a Restore the topic still holds the retracted
        versions of the abandoned timeline; the engine always asks for the version it trained
        last, which is the one to use.
        """
        if min_version in self.announced:
            return self.announced[min_version]
        newer = [v for v in self.announced if v > min_version]
        return self.announced[max(newer)] if newer else None

    @staticmethod
    def head_state(event: CheckpointEvent) -> dict[str, Any]:
        """The head ``state_dict`` of an announcement: its inline bytes, else its uri's file."""
        if event.state is not None:
            blob = torch.load(io.BytesIO(event.state), weights_only=False, map_location="cpu")
            if not isinstance(blob, dict):
                raise ValueError(f"checkpoints v{event.version}: inline state is not a dict")
            return blob
        head: dict[str, Any] = handoff.load_blob(Path(event.uri))["head"]
        return head

    def close(self) -> None:
        """Close the subscription."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
