"""The run's Kafka topics, created and deleted idempotently through the admin client.

The topic names are the data plane's own (``prefloop.bus.base.run_topics``:
``prefloop.<run>.<kind>`` for completions, scores, selections, annotations, judgements and
checkpoints), and creation reuses :meth:`prefloop.bus.kafka_bus.KafkaBus.ensure_topics`, so
the operator, the services and the driver can race to create them. Deletion asks only for the
topics the broker has and treats "already gone" as done, so a retried finalizer succeeds. A
broker that cannot be reached raises :class:`TopicsError`, which the handlers turn into a
retry with backoff (it can heal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prefloop.bus.base import BusError, run_topics
from prefloop.bus.kafka_bus import KafkaBus


class TopicsError(RuntimeError):
    """The broker could not be reached or refused the request (retry later)."""


def ensure_run_topics(
    bootstrap: str, run: str, *, partitions: int = 4, replication_factor: int = 1
) -> list[str]:
    """Create the run's topics that do not exist yet; returns every topic name of the run."""
    topics = run_topics(run)
    bus = KafkaBus(
        bootstrap,
        client_id="prefloop-operator",
        partitions=partitions,
        replication_factor=replication_factor,
    )
    try:
        bus.ensure_topics(topics)
    except BusError as exc:
        raise TopicsError(str(exc)) from exc
    finally:
        bus.close()
    return topics


@contextlib.contextmanager
def _admin(bootstrap: str) -> Iterator[Any]:
    """A kafka-python admin client, closed after use; connection errors as TopicsError."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="prefloop-operator")
    except KafkaError as exc:
        raise TopicsError(f"cannot reach the broker {bootstrap}: {exc}") from exc
    try:
        yield admin
    except KafkaError as exc:
        raise TopicsError(f"the broker {bootstrap} refused: {exc}") from exc
    finally:
        admin.close()


def delete_run_topics(bootstrap: str, run: str) -> list[str]:
    """Delete the run's topics that exist; returns the names deleted (none the second time)."""
    from kafka.errors import UnknownTopicOrPartitionError

    with _admin(bootstrap) as admin:
        present = set(admin.list_topics())
        doomed = [t for t in run_topics(run) if t in present]
        if doomed:
            with contextlib.suppress(UnknownTopicOrPartitionError):  # deleted meanwhile
                admin.delete_topics(doomed)
        return doomed


def existing_run_topics(bootstrap: str, run: str) -> list[str]:
    """The run's topics the broker has now (for tests and diagnostics)."""
    with _admin(bootstrap) as admin:
        present = set(admin.list_topics())
    return [t for t in run_topics(run) if t in present]
