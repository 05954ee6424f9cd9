"""The Kafka :class:`~prefloop.bus.base.Bus` over kafka-python: the service mode's data plane.

- **publish**: records are grouped by key (the prompt id) and packed into JSON-array envelopes
  (:mod:`prefloop.bus.envelope`) of at most ``max_records_per_message`` records and
  ``max_message_bytes`` bytes, then sent with ``acks=all`` and the idempotent producer; the call
  returns once every message is acknowledged, or raises :class:`BusError`. One Kafka message per
  record would cap kafka-python near 6k records/s; packing lifts that cap by the batch factor.
- **read_all**: a group-less consumer is assigned every partition, seeks to the beginning and
  reads until no new data has arrived for an idle period. It never asks the broker for end
  offsets: Tansu (the test broker) reports them wrongly, and an idle period is correct on any
  broker for a log that is not being written to.
- **subscribe**: the same manual assignment, kept open; ``poll`` returns what arrived. Manual
  assignment needs no group join (which costs seconds) and gives every subscriber the whole
  topic, which is what the trainer (annotations) and every reward replica (checkpoints) need.
- **ensure_topics**: ``KafkaAdminClient.create_topics``; an existing topic is not an error, so
  several processes may race to create the same run's topics.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prefloop.bus.base import BusError, Record
from prefloop.bus.envelope import pack_records, unpack_message

DEFAULT_PARTITIONS = 4
DEFAULT_MAX_RECORDS_PER_MESSAGE = 500
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""A single record larger than a batch (a checkpoint's state) may be this large."""


def _consumer_records(polled: dict[Any, list[Any]]) -> list[Record]:
    out: list[Record] = []
    for tp, messages in polled.items():
        for m in messages:
            where = f"{tp.topic}[{tp.partition}]@{m.offset}"
            out.extend(unpack_message(m.key, m.value, where))
    return out


class KafkaBus:
    """A :class:`~prefloop.bus.base.Bus` on a Kafka-protocol broker, with per-key batching.

    Args:
        bootstrap_servers: ``HOST:PORT`` (or a comma-separated list) of the broker(s).
        client_id: the name this process shows the broker (its role, e.g. ``trainer``).
        linger_ms: how long the producer waits to fill a request (latency against throughput).
        max_records_per_message: records of one key packed into one Kafka message (1 = none).
        max_message_bytes: a packed message is closed before it exceeds this size.
        max_request_bytes: the largest single record (and request) the client will send/fetch.
        partitions: partitions of the topics this bus creates.
        replication_factor: replicas of the topics this bus creates.
        idle_poll_ms: the consumer's fetch wait; bounds how fast an idle period is noticed.
        compression_type: ``None``, ``"gzip"`` (built in) or any codec kafka-python has.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "prefloop",
        linger_ms: int = 5,
        max_records_per_message: int = DEFAULT_MAX_RECORDS_PER_MESSAGE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        partitions: int = DEFAULT_PARTITIONS,
        replication_factor: int = 1,
        idle_poll_ms: int = 100,
        compression_type: str | None = None,
        send_timeout_seconds: float = 60.0,
    ) -> None:
        if not bootstrap_servers or ":" not in bootstrap_servers:
            raise ValueError(f"bootstrap_servers must be HOST:PORT, got {bootstrap_servers!r}")
        if max_records_per_message < 1:
            raise ValueError(f"max_records_per_message must be >= 1, got {max_records_per_message}")
        if partitions < 1 or replication_factor < 1:
            raise ValueError("partitions and replication_factor must be >= 1")
        if max_message_bytes > max_request_bytes:
            raise ValueError("max_message_bytes must not exceed max_request_bytes")
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.max_records_per_message = max_records_per_message
        self.max_message_bytes = max_message_bytes
        self.max_request_bytes = max_request_bytes
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.idle_poll_ms = idle_poll_ms
        self.send_timeout_seconds = send_timeout_seconds
        self._linger_ms = linger_ms
        self._compression_type = compression_type
        self._lock = threading.Lock()
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._closed = False
        self.messages_sent = 0
        """Kafka messages acknowledged so far (records / messages = the batching factor)."""
        self.records_sent = 0

    # -- clients ----------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the Kafka bus is closed")

    def _get_producer(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._lock:
            self._check_open()
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap_servers,
                        client_id=f"{self.client_id}-producer",
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=self._linger_ms,
                        batch_size=max(16384, min(self.max_message_bytes, 1024 * 1024)),
                        max_request_size=self.max_request_bytes,
                        compression_type=self._compression_type,
                    )
                except KafkaError as exc:
                    raise BusError(
                        f"cannot connect a producer to {self.bootstrap_servers}: {exc}"
                    ) from exc
            return self._producer

    def _new_consumer(self) -> Any:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        self._check_open()
        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=f"{self.client_id}-consumer",
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=self.idle_poll_ms,
                max_partition_fetch_bytes=self.max_request_bytes,
                fetch_max_bytes=max(self.max_request_bytes, 52_428_800),
                max_poll_records=100_000,
            )
        except KafkaError as exc:
            raise BusError(f"cannot connect a consumer to {self.bootstrap_servers}: {exc}") from exc

    def _admin_client(self) -> Any:
        """The admin client, created on first use (call with ``self._lock`` held)."""
        from kafka.admin import KafkaAdminClient

        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
            )
        return self._admin

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the missing topics with ``partitions`` partitions (idempotent)."""
        from kafka.admin import NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        wanted = [t for t in dict.fromkeys(topics) if t not in self._known_topics]
        if not wanted:
            return
        with self._lock:
            self._check_open()
            try:
                existing = set(self._admin_client().list_topics())
                for topic in wanted:
                    if topic in existing:
                        continue
                    # another process may create it first: that is success too
                    with contextlib.suppress(TopicAlreadyExistsError):
                        self._admin_client().create_topics(
                            [NewTopic(topic, self.partitions, self.replication_factor)]
                        )
            except KafkaError as exc:
                raise BusError(
                    f"cannot create topics {wanted} on {self.bootstrap_servers}: {exc}"
                ) from exc
            self._known_topics.update(wanted)

    def topic_exists(self, topic: str) -> bool:
        """Whether the broker has ``topic`` (asks it unless this bus created or saw it)."""
        from kafka.errors import KafkaError

        if topic in self._known_topics:
            return True
        with self._lock:
            self._check_open()
            try:
                exists = topic in set(self._admin_client().list_topics())
            except KafkaError as exc:
                raise BusError(f"cannot list topics on {self.bootstrap_servers}: {exc}") from exc
            if exists:
                self._known_topics.add(topic)
            return exists

    def _assign_all(self, consumer: Any, topic: str, timeout_seconds: float = 15.0) -> list[Any]:
        """Assign every partition of ``topic`` to ``consumer`` (waits for the metadata)."""
        from kafka import TopicPartition

        deadline = time.monotonic() + timeout_seconds
        while True:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            if time.monotonic() > deadline:
                raise BusError(f"topic {topic} has no partitions on {self.bootstrap_servers}")
            time.sleep(0.05)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        return tps

    # -- Bus ----------------------------------------------------------------------------------
    def publish(self, topic: str, records: Iterable[Record]) -> None:
        """Pack the records per key, send them with acks=all and wait for every acknowledgement."""
        from kafka.errors import KafkaError

        messages = pack_records(
            records, max_records=self.max_records_per_message, max_bytes=self.max_message_bytes
        )
        if not messages:
            return
        too_big = [m for m in messages if len(m.payload) > self.max_request_bytes]
        if too_big:
            raise BusError(
                f"{topic}: a record of key {too_big[0].key!r} encodes to "
                f"{len(too_big[0].payload)} bytes, over max_request_bytes={self.max_request_bytes}"
            )
        self.ensure_topics([topic])
        producer = self._get_producer()
        futures = []
        try:
            for m in messages:
                futures.append(producer.send(topic, key=m.key.encode("utf-8"), value=m.payload))
            producer.flush(timeout=self.send_timeout_seconds)
            for f in futures:
                f.get(timeout=self.send_timeout_seconds)
        except KafkaError as exc:
            raise BusError(
                f"{topic}: publishing {len(messages)} message(s) to {self.bootstrap_servers} "
                f"failed: {exc!r}"
            ) from exc
        with self._lock:
            self.messages_sent += len(messages)
            self.records_sent += sum(m.num_records for m in messages)

    def read_all(self, topic: str, timeout_seconds: float = 5.0) -> Iterator[Record]:
        """Every record of ``topic`` from the beginning, until ``timeout_seconds`` pass idle.

        A topic that does not exist reads as empty (and is not created).
        """
        if timeout_seconds <= 0:
            raise ValueError(
                f"timeout_seconds (the idle period) must be > 0, got {timeout_seconds}"
            )
        if not self.topic_exists(topic):
            return iter(())
        return self._replay(topic, timeout_seconds)

    def _replay(self, topic: str, idle_seconds: float) -> Iterator[Record]:
        from kafka.errors import KafkaError

        consumer = self._new_consumer()
        try:
            tps = self._assign_all(consumer, topic)
            consumer.seek_to_beginning(*tps)
            for tp in tps:
                consumer.position(tp)  # resolves the start offsets: the connection is up
            last_data = time.monotonic()
            while True:
                polled = consumer.poll(timeout_ms=self.idle_poll_ms)
                if polled:
                    last_data = time.monotonic()
                    yield from _consumer_records(polled)
                elif time.monotonic() - last_data >= idle_seconds:
                    return
        except KafkaError as exc:
            raise BusError(f"reading {topic} from {self.bootstrap_servers} failed: {exc}") from exc
        finally:
            consumer.close()

    def subscribe(self, topic: str, *, from_beginning: bool = True) -> KafkaSubscription:
        """Follow every partition of ``topic`` without a consumer group.

        ``from_beginning=False`` seeks to the end; on Tansu, whose end offsets are wrong, this may
        also return the tail of the last producer batch published before the call, which an
        idempotent consumer ignores.
        """
        self.ensure_topics([topic])
        consumer = self._new_consumer()
        try:
            tps = self._assign_all(consumer, topic)
            if from_beginning:
                consumer.seek_to_beginning(*tps)
            else:
                consumer.seek_to_end(*tps)
            for tp in tps:
                consumer.position(tp)
        except BaseException:
            consumer.close()
            raise
        return KafkaSubscription(consumer, topic)

    def close(self) -> None:
        """Flush and close the producer and the admin client."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, admin = self._producer, self._admin
            self._producer = self._admin = None
        if producer is not None:
            producer.close(timeout=self.send_timeout_seconds)
        if admin is not None:
            admin.close()


class KafkaSubscription:
    """A group-less consumer assigned every partition of one topic (use from one thread)."""

    def __init__(self, consumer: Any, topic: str) -> None:
        self._consumer = consumer
        self.topic = topic
        self._closed = False

    def poll(self, timeout_seconds: float) -> list[Record]:
        """The records that arrived since the last poll, waiting up to ``timeout_seconds``."""
        from kafka.errors import KafkaError

        if self._closed:
            raise BusError(f"subscription to {self.topic} is closed")
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        try:
            while True:
                remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
                polled = self._consumer.poll(timeout_ms=remaining_ms)
                if polled:
                    return _consumer_records(polled)
                if remaining_ms <= 0:
                    return []
        except KafkaError as exc:
            raise BusError(f"polling {self.topic} failed: {exc}") from exc

    def close(self) -> None:
        """Close the consumer (its connections to the broker)."""
        if not self._closed:
            self._closed = True
            self._consumer.close()
