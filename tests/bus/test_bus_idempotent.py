"""At-least-once delivery changes nothing: idempotent consumers and deterministic message ids."""

from __future__ import annotations

from typing import Any

import pytest
from _bus_testing import IDLE_SECONDS

from prefloop.bus.base import Bus, Record, topic_name
from prefloop.bus.export import rebuild_dataset
from prefloop.bus.idempotent import IdempotentConsumer, message_id, seen_ids_of
from prefloop.bus.publisher import RunPublisher


def _row(run: str, round_: int, i: int, label_source: str = "judge") -> dict[str, Any]:
    return {
        "pair_id": f"pair-{round_}-{i}",
        "prompt_id": f"prompt-{round_}-{i % 3}",
        "prompt": [{"role": "user", "content": f"question {i}"}],
        "chosen": [{"role": "assistant", "content": f"good {i}"}],
        "rejected": [{"role": "assistant", "content": f"bad {i}"}],
        "chosen_score": 0.9,
        "rejected_score": 0.1,
        "label_source": label_source,
        "round": round_,
        "run": run,
    }


def test_replaying_a_topic_twice_applies_each_message_once(bus: Bus, run_name: str) -> None:
    topic = topic_name(run_name, "annotations")
    records = [Record(f"k{i % 4}", f"id-{i % 30}", {"i": i % 30}) for i in range(45)]
    bus.publish(topic, records)  # 15 duplicates of earlier ids, as a retried producer sends
    applied: list[int] = []
    consumer = IdempotentConsumer(lambda r: applied.append(r.value["i"]))
    assert consumer.replay(bus, topic, IDLE_SECONDS) == 30
    assert consumer.replay(bus, topic, IDLE_SECONDS) == 0
    assert sorted(applied) == list(range(30))
    assert consumer.skipped == 15 + 45
    assert consumer.seen_ids() == frozenset(f"id-{i}" for i in range(30))
    assert seen_ids_of(bus, topic, IDLE_SECONDS) == set(consumer.seen_ids())
    # a consumer restored from a saved seen-set applies only what is new
    restored = IdempotentConsumer(lambda r: applied.append(-1), seen=consumer.seen_ids())
    bus.publish(topic, [Record("k9", "id-new", {"i": 99})])
    assert restored.replay(bus, topic, IDLE_SECONDS) == 1
    assert applied.count(-1) == 1


def test_a_failing_handler_leaves_the_record_to_be_retried() -> None:
    calls: list[str] = []

    def flaky(record: Record) -> None:
        calls.append(record.msg_id)
        if len(calls) == 1:
            raise RuntimeError("transient")

    consumer = IdempotentConsumer(flaky)
    record = Record("k", "m1", {})
    with pytest.raises(RuntimeError, match="transient"):
        consumer.handle(record)
    assert not consumer.has_seen("m1")
    assert consumer.handle(record) is True
    assert consumer.handle(record) is False
    assert calls == ["m1", "m1"]


def test_a_producer_resending_annotations_does_not_duplicate_the_export(
    bus: Bus, run_name: str
) -> None:
    publisher = RunPublisher(bus, run_name)
    round0 = [_row(run_name, 0, i) for i in range(6)]
    round1 = [_row(run_name, 1, i) for i in range(5)]
    publisher.annotations(1, round1)  # rounds may arrive out of order
    publisher.annotations(0, round0)
    publisher.annotations(0, round0)  # the whole round re-sent after a restart
    publisher.annotations(1, round1[2:], first_order=2)  # a partial retry
    rows = rebuild_dataset(bus, run_name, timeout_seconds=IDLE_SECONDS)
    assert rows == round0 + round1


def test_pseudo_labels_are_exported_only_when_asked(bus: Bus, run_name: str) -> None:
    publisher = RunPublisher(bus, run_name)
    rows = [_row(run_name, 0, 0), _row(run_name, 0, 1, "pseudo"), _row(run_name, 0, 2, "identity")]
    publisher.annotations(0, rows)
    kept = rebuild_dataset(bus, run_name, timeout_seconds=IDLE_SECONDS)
    assert [r["pair_id"] for r in kept] == ["pair-0-0", "pair-0-2"]
    everything = rebuild_dataset(
        bus, run_name, include_pseudo_labels=True, timeout_seconds=IDLE_SECONDS
    )
    assert everything == rows


def test_message_ids_are_deterministic_and_distinguish_every_field() -> None:
    base = message_id("run", "scores", round=1, prompt_id="p", pair_id="x", part=0)
    assert base == message_id("run", "scores", round=1, prompt_id="p", pair_id="x", part=0)
    variants = {
        message_id("run2", "scores", round=1, prompt_id="p", pair_id="x", part=0),
        message_id("run", "judgements", round=1, prompt_id="p", pair_id="x", part=0),
        message_id("run", "scores", round=2, prompt_id="p", pair_id="x", part=0),
        message_id("run", "scores", round=1, prompt_id="q", pair_id="x", part=0),
        message_id("run", "scores", round=1, prompt_id="p", pair_id="y", part=0),
        message_id("run", "scores", round=1, prompt_id="p", pair_id="x", part=1),
        message_id("run", "scores", round=1, prompt_id="p", pair_id="x"),
        message_id("run", "scores", prompt_id="1", pair_id="x", part=0),  # no field aliasing
    }
    assert base not in variants and len(variants) == 8
    assert len(base) == 24 and int(base, 16) >= 0
    with pytest.raises(ValueError, match="round"):
        message_id("run", "scores", round=-1)
    with pytest.raises(ValueError, match="run"):
        message_id("", "scores")
