"""The batch envelope and the topic payloads: packing limits, decoding, errors naming the fault."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prefloop.acquisition.base import Selection
from prefloop.bus.base import BusError, Record, topic_name
from prefloop.bus.envelope import pack_records, unpack_message
from prefloop.bus.memory import InMemoryBus
from prefloop.bus.payloads import (
    PayloadError,
    annotation_from_value,
    checkpoint_from_value,
    checkpoint_value,
    item_from_completion,
)
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import Judgement, JudgeRequest


def test_pack_groups_by_key_within_record_and_byte_limits() -> None:
    records = [Record(f"k{i % 2}", f"m{i}", {"t": "x" * 40}) for i in range(9)]
    msgs = pack_records(records, max_records=3, max_bytes=10_000)
    assert [(m.key, m.num_records) for m in msgs] == [("k0", 3), ("k0", 2), ("k1", 3), ("k1", 1)]
    unpacked = [r for m in msgs for r in unpack_message(m.key.encode(), m.payload, "t")]
    assert [r.msg_id for r in unpacked] == ["m0", "m2", "m4", "m6", "m8", "m1", "m3", "m5", "m7"]
    assert all(r in records for r in unpacked)
    one_size = len(msgs[0].payload) // 3
    by_bytes = pack_records(records, max_records=100, max_bytes=2 * one_size + 10)
    assert all(len(m.payload) <= 2 * one_size + 10 for m in by_bytes)
    assert [m.num_records for m in by_bytes] == [2, 2, 1, 2, 2]  # k0: 5 records, k1: 4
    huge = pack_records([Record("k", "big", {"t": "y" * 5000})], max_records=10, max_bytes=100)
    assert len(huge) == 1 and huge[0].num_records == 1  # alone, never dropped or split
    with pytest.raises(ValueError, match="max_records"):
        pack_records(records, max_records=0, max_bytes=10)


def test_unpack_reads_single_record_messages_and_names_the_bad_message() -> None:
    single = Record("k", "m", {"a": 1})
    assert unpack_message(b"k", single.encode(), "t[0]@3") == [single]
    with pytest.raises(BusError, match=r"t\[0\]@3: message value is not JSON"):
        unpack_message(b"k", b"\xff{", "t[0]@3")
    with pytest.raises(BusError, match=r"t\[1\]@9: item 1 of the batch needs msg_id"):
        unpack_message(b"k", json.dumps([{"msg_id": "a", "value": {}}, {}]).encode(), "t[1]@9")
    with pytest.raises(BusError, match="must carry its key"):
        unpack_message(None, b"[]", "t[1]@9")
    with pytest.raises(BusError, match="Record objects"):
        pack_records([{"key": "k"}], max_records=2, max_bytes=100)  # type: ignore[list-item]


def test_publisher_writes_every_kind_with_decodable_values() -> None:
    bus = InMemoryBus()
    pub = RunPublisher(bus, "demo")
    item = PromptItem(
        "p1", "Say hi", (Response("m-a", "hi", 0.7), Response("m-b", "hello", None)), "src"
    )
    item2 = PromptItem("p2", ({"role": "user", "content": "Yo"},), (Response("m-a", "yo", 1.0),))
    assert pub.completions(0, [item, item2]) == 2
    (c1, c2) = bus.read_all(topic_name("demo", "completions"))
    assert item_from_completion(c1.value) == item and item_from_completion(c2.value) == item2
    mean = np.array([[0.1, np.nan], [0.2, 0.3]])
    assert pub.scores(0, ["p1", "p2"], mean, mean / 2, model_version=3) == 2
    s1, _ = bus.read_all(topic_name("demo", "scores"))
    assert s1.key == "p1" and s1.value["mean"] == [0.1, None] and s1.value["model_version"] == 3
    sel = Selection(
        np.array([1, 0]),
        np.array([0, 1]),
        np.array([1, 0]),
        np.array([0.5, np.nan]),
        np.array([0, 1], dtype=np.int8),
    )
    assert pub.selections(0, ["p1", "p2"], sel, method="delta_ucb", pair_ids=["x", "y"]) == 2
    sels = list(bus.read_all(topic_name("demo", "selections")))
    assert [(r.key, r.value["score"], r.value["pair_id"]) for r in sels] == [
        ("p2", 0.5, "x"),
        ("p1", None, "y"),
    ]
    req = JudgeRequest("x", item, item.responses[0], item.responses[1])
    assert pub.judgements(0, [req], [Judgement("x", 1, 0.25, tie=True)]) == 1
    (j,) = bus.read_all(topic_name("demo", "judgements"))
    assert j.key == "p1" and j.value["winner"] == 1 and j.value["tie"] is True
    # the same call again publishes the same ids: a consumer dedups the retry
    pub.completions(0, [item])
    ids = [r.msg_id for r in bus.read_all(topic_name("demo", "completions"))]
    assert ids[2] == ids[0] and ids[0] != ids[1]


def test_publisher_and_decoders_reject_malformed_input_naming_it() -> None:
    pub = RunPublisher(InMemoryBus(), "demo")
    with pytest.raises(ValueError, match=r"rows\[0\] \(pair a\) is from round 1"):
        pub.annotations(0, [{"pair_id": "a", "prompt_id": "p", "round": 1}])
    with pytest.raises(ValueError, match=r"rows\[0\] needs string pair_id"):
        pub.annotations(0, [{"prompt_id": "p", "round": 0}])
    with pytest.raises(ValueError, match="round must be an integer"):
        pub.completions(-1, [])
    with pytest.raises(ValueError, match=r"mean \(2, 2\)"):
        pub.scores(0, ["p"], np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="cannot be part of a Kafka topic name"):
        RunPublisher(InMemoryBus(), "bad name")
    with pytest.raises(PayloadError, match="field 'row' is missing"):
        annotation_from_value({"round": 0, "order": 0})
    with pytest.raises(PayloadError, match="field 'round' has type bool"):
        annotation_from_value(
            {"round": True, "order": 0, "row": {"pair_id": "a", "prompt_id": "b"}}
        )
    tampered = checkpoint_value(2, "", b"abc")
    tampered["state_b64"] = "YWJk"  # b"abd"
    with pytest.raises(PayloadError, match="do not match state_sha256"):
        checkpoint_from_value(tampered)
    with pytest.raises(PayloadError, match="give a uri or the state"):
        checkpoint_value(1, "", None)
