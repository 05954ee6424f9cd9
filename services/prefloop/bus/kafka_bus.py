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

Broker restarts. A restarted broker forgets the idempotent producer's id (every later send
fails with ``UnknownProducerIdError`` or ``InitProducerId ... UnknownError``), and one with
in-memory storage also forgets its topics. So ``publish`` treats any Kafka error as possibly
fatal for the producer: it closes it, forgets which topics it knows, and retries with a fresh
producer (re-creating missing topics) with backoff until ``recover_timeout_seconds`` pass; a
re-sent message carries the same ``msg_id``s, which consumers ignore. Subscriptions remember
their positions and, on a Kafka error, reconnect with a new consumer at those positions
(``auto_offset_reset=earliest``: a position the broker no longer has restarts from the
beginning, never skips). What a broker with in-memory storage lost stays lost: the services
need a broker with durable storage (``prefloop broker``) for the topics to keep the whole run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prefloop.bus.base import BusError, Record
from prefloop.bus.envelope import PackedMessage, pack_records, unpack_message

DEFAULT_PARTITIONS = 4
DEFAULT_MAX_RECORDS_PER_MESSAGE = 500
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""A single record larger than a batch (a checkpoint's state) may be this large."""
DEFAULT_RECOVER_TIMEOUT_SECONDS = 120.0
"""How long publish and poll keep reconnecting to a broker that went away."""
RECOVER_BACKOFF_MAX_SECONDS = 2.0

log = logging.getLogger("prefloop.bus.kafka")


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
        send_timeout_seconds: how long one attempt waits for its acknowledgements.
        recover_timeout_seconds: how long publish / poll keep reconnecting after Kafka errors
            (a broker restart) before raising :class:`BusError`.
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
        recover_timeout_seconds: float = DEFAULT_RECOVER_TIMEOUT_SECONDS,
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
        self.recover_timeout_seconds = recover_timeout_seconds
        self.reconnects = 0
        """Producers and consumers replaced after a Kafka error (broker restarts survived)."""
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
                        max_block_ms=int(min(self.send_timeout_seconds, 10.0) * 1000),
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
                auto_offset_reset="earliest",
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
        """Pack the records per key, send them with acks=all and wait for every acknowledgement.

        Kafka errors (a broker restart) are retried with a fresh producer until
        ``recover_timeout_seconds`` pass; then :class:`BusError`.
        """
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
        give_up_at = time.monotonic() + self.recover_timeout_seconds
        pause = 0.1
        while True:
            try:
                self._send_all(topic, messages)
                break
            except (KafkaError, BusError) as exc:
                if self._closed or time.monotonic() + pause > give_up_at:
                    raise BusError(
                        f"{topic}: publishing {len(messages)} message(s) to "
                        f"{self.bootstrap_servers} failed: {exc!r}"
                    ) from exc
                log.warning(
                    "%s: publish to %s failed (%r); reconnecting in %.1fs",
                    topic,
                    self.bootstrap_servers,
                    exc,
                    pause,
                )
                self._reset_producer()
                time.sleep(pause)
                pause = min(RECOVER_BACKOFF_MAX_SECONDS, pause * 2)
        with self._lock:
            self.messages_sent += len(messages)
            self.records_sent += sum(m.num_records for m in messages)

    def _send_all(self, topic: str, messages: list[PackedMessage]) -> None:
        """One attempt: make sure the topic exists, send, wait for every acknowledgement."""
        self.ensure_topics([topic])
        producer = self._get_producer()
        futures = [
            producer.send(topic, key=m.key.encode("utf-8"), value=m.payload) for m in messages
        ]
        producer.flush(timeout=self.send_timeout_seconds)
        for f in futures:
            f.get(timeout=self.send_timeout_seconds)

    def _reset_producer(self) -> None:
        """Drop the producer (its id may be unknown to a restarted broker) and the topic cache
        (a broker with in-memory storage forgot its topics); the next attempt recreates both."""
        with self._lock:
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
            self._known_topics.clear()
            self.reconnects += 1
        for client in (producer, admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close(**({"timeout": 0.5} if client is producer else {}))

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
        consumer, _ = self._open_follower(topic, None if from_beginning else "end")
        return KafkaSubscription(self, consumer, topic)

    def _open_follower(
        self, topic: str, positions: dict[int, int] | str | None
    ) -> tuple[Any, list[Any]]:
        """A consumer assigned every partition of ``topic``, placed at ``positions``.

        ``positions``: None = the beginning, ``"end"`` = the end, or partition -> next offset
        (partitions missing from the map start at the beginning).
        """
        consumer = self._new_consumer()
        try:
            tps = self._assign_all(consumer, topic)
            if positions == "end":
                consumer.seek_to_end(*tps)
            else:
                consumer.seek_to_beginning(*tps)
                if isinstance(positions, dict):
                    for tp in tps:
                        if tp.partition in positions:
                            consumer.seek(tp, positions[tp.partition])
            for tp in tps:
                consumer.position(tp)
        except BaseException:
            consumer.close()
            raise
        return consumer, tps

    def close(self) -> None:
        """Flush and close the producer and the admin client."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, admin = self._producer, self._admin
            self._producer = self._admin = None
        if producer is not None:
            # publish returns only once acknowledged: nothing is pending, so do not wait long
            # for a broker that may be gone (a shutdown must not hang on it)
            producer.close(timeout=min(5.0, self.send_timeout_seconds))
        if admin is not None:
            admin.close()


class KafkaSubscription:
    """A group-less consumer assigned every partition of one topic (use from one thread).

    It remembers the next offset of every partition it has returned records from; after a Kafka
    error (the broker restarted) it replaces its consumer with a new one at those offsets,
    re-creating the topic if the broker lost it, for up to the bus's
    ``recover_timeout_seconds``.
    """

    def __init__(self, bus: KafkaBus, consumer: Any, topic: str) -> None:
        self._bus = bus
        self._consumer: Any = consumer
        self.topic = topic
        self.positions: dict[int, int] = {}
        """Partition -> the offset after the last record returned."""
        self._closed = False

    def poll(self, timeout_seconds: float) -> list[Record]:
        """The records that arrived since the last poll, waiting up to ``timeout_seconds``."""
        from kafka.errors import KafkaError

        if self._closed:
            raise BusError(f"subscription to {self.topic} is closed")
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        give_up_at: float | None = None
        while True:
            try:
                return self._poll_until(deadline)
            except (KafkaError, BusError) as exc:
                now = time.monotonic()
                give_up_at = give_up_at or now + self._bus.recover_timeout_seconds
                if self._closed or now > give_up_at:
                    raise BusError(f"polling {self.topic} failed: {exc!r}") from exc
                log.warning("%s: consumer failed (%r); reconnecting", self.topic, exc)
                self._reconnect()
                time.sleep(min(RECOVER_BACKOFF_MAX_SECONDS, max(0.0, deadline - now)))

    def _poll_until(self, deadline: float) -> list[Record]:
        if self._consumer is None:
            self._consumer, _ = self._bus._open_follower(self.topic, dict(self.positions))
        while True:
            remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            polled = self._consumer.poll(timeout_ms=remaining_ms)
            if polled:
                for tp, messages in polled.items():
                    if messages:
                        self.positions[tp.partition] = messages[-1].offset + 1
                return _consumer_records(polled)
            if remaining_ms <= 0:
                return []

    def _reconnect(self) -> None:
        """Close the consumer; the next poll opens a new one at the remembered positions."""
        consumer, self._consumer = self._consumer, None
        self._bus.reconnects += 1
        self._bus._known_topics.discard(self.topic)
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()
        with contextlib.suppress(BusError):
            self._bus.ensure_topics([self.topic])

    def close(self) -> None:
        """Close the consumer (its connections to the broker)."""
        if not self._closed:
            self._closed = True
            if self._consumer is not None:
                self._consumer.close()
