"""bus: the data plane. Per-run topics of keyed records with deterministic ids.

- ``base``: the contract (``Record``, ``Bus``, ``Subscription``, ``topic_name``);
- ``memory``: ``InMemoryBus``, the embedded mode's bus;
- ``kafka_bus``: ``KafkaBus`` over kafka-python, with per-key batching (``envelope``);
- ``idempotent``: ``IdempotentConsumer`` and ``message_id``;
- ``payloads`` / ``publisher``: each topic kind's values and ``RunPublisher``;
- ``export``: ``rebuild_dataset`` and ``prefloop export --from-kafka``;
- ``tansu`` / ``throughput``: a local test broker and the throughput measurement.
"""

from prefloop.bus.base import (
    TOPIC_KINDS,
    Bus,
    BusError,
    Record,
    Subscription,
    TopicKind,
    run_topics,
    topic_name,
)
from prefloop.bus.idempotent import IdempotentConsumer, message_id
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.memory import InMemoryBus

__all__ = [
    "TOPIC_KINDS",
    "Bus",
    "BusError",
    "IdempotentConsumer",
    "InMemoryBus",
    "KafkaBus",
    "Record",
    "Subscription",
    "TopicKind",
    "message_id",
    "run_topics",
    "topic_name",
]
