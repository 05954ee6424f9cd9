"""The trainer and reward services on the data plane (an in-memory bus, the same contract as
Kafka): Train by pair ids waits for the annotations topic and is UNAVAILABLE until the pairs
arrive; each new version is announced on the checkpoints topic, and the reward service loads
exactly that version from the announcement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from rpc_helpers import InProcessServer, context, expect, item, shrunk_run

from prefloop.bus.base import topic_name
from prefloop.bus.memory import InMemoryBus
from prefloop.bus.payloads import checkpoint_from_value
from prefloop.bus.publisher import RunPublisher
from prefloop.data.records import PreferencePair
from prefloop.rpc import dataplane, reward_service, trainer_service
from prefloop.rpc.convert import item_to_msg
from prefloop.rpc.dataplane import AnnotationInbox, CheckpointFeed, NotArrived
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig
from prefloop.v1 import common_pb2, reward_pb2, reward_pb2_grpc, trainer_pb2, trainer_pb2_grpc

RUN = common_pb2.RunRef(run="quickstart")


def labelled(pid: str, round: int = 0) -> PreferencePair:
    it = item(pid)
    return PreferencePair(
        f"pair-{pid}", "quickstart", round, it.prompt_id, it.prompt, it.responses[2],
        it.responses[0], 2, 0, "delta_ucb", "oracle",
    )  # fmt: skip


def same_state(a: Any, b: Any) -> bool:
    """Deep equality of (nested) state dicts holding tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(a.eq(b).all())
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture(scope="module")
def plane(reference: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("dataplane")
    bus = InMemoryBus()
    metrics = ServiceMetrics()
    ctx = context(shrunk_run(reference.cache_dir), tmp, metrics)
    ctx.bus = bus
    ctx.state_dir.mkdir(parents=True)
    trainer = trainer_service.TrainerServicer(ctx)
    reward = reward_service.RewardServicer(ctx)
    srv = InProcessServer(
        [trainer_service.register(trainer), reward_service.register(reward)],
        metrics,
        ServerConfig(),
    )
    with grpc.insecure_channel(srv.address) as channel:
        yield bus, channel, trainer, reward
    srv.stop()
    bus.close()


def test_train_by_id_waits_for_the_annotations_topic(
    plane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, channel, trainer, reward = plane
    # this head is ~4 MB: over the default inline limit, so it would travel by uri only
    monkeypatch.setattr(dataplane, "INLINE_STATE_MAX_BYTES", 64 * 1024 * 1024)
    publisher = RunPublisher(bus, "quickstart")
    pairs = [labelled("a"), labelled("b")]
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    req = trainer_pb2.TrainRequest(
        run=RUN, pair_ids=[p.pair_id for p in pairs], prompts_done=2, prompts_total=20, seed=3
    )
    # the pairs were never published: the call gives up within its deadline, retryably
    for published, missing in ((0, "2 of 2"), (1, "1 of 2")):
        publisher.labelled_pairs(0, pairs[:published])
        with pytest.raises(grpc.RpcError) as err:
            stub.Train(req, timeout=1.5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"pair_ids: {missing} pairs" in str(err.value.details())
    publisher.labelled_pairs(0, pairs)  # a re-publish of pair a changes nothing
    reply = stub.Train(req, timeout=60)
    assert reply.model_version == 1 and trainer.inbox.pending == 0
    both = trainer_pb2.TrainRequest(
        run=common_pb2.RunRef(run="quickstart", round=7), pair_ids=["x"], prompts_total=1
    )
    both.pairs.add(pair_id="x")
    expect(grpc.StatusCode.INVALID_ARGUMENT, ["not both"], stub.Train, both)

    # version 1 is announced with its state inline; the reward service loads exactly it
    records = list(bus.read_all(topic_name("quickstart", "checkpoints")))
    events = [checkpoint_from_value(r.value) for r in records]
    assert [e.version for e in events] == [1] and events[0].state is not None
    head = CheckpointFeed.head_state(events[0])
    score = reward_pb2_grpc.RewardServiceStub(channel).Score(
        reward_pb2.ScoreRequest(run=RUN, prompts=[item_to_msg(item())], min_model_version=1),
        timeout=30,
    )
    assert score.model_version == 1
    assert same_state(reward.model.head.state_dict(), head)
    assert not same_state(reward.served._initial_head, head)
    late = reward_pb2.ScoreRequest(run=RUN, prompts=[item_to_msg(item())], min_model_version=5)
    with pytest.raises(grpc.RpcError) as err:
        reward_pb2_grpc.RewardServiceStub(channel).Score(late, timeout=2)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_inbox_dedups_replays_and_reset_rereads(tmp_path: Path) -> None:
    bus = InMemoryBus()
    publisher = RunPublisher(bus, "quickstart")
    inbox = AnnotationInbox(bus, "quickstart")
    pairs = [labelled("a"), labelled("b")]
    publisher.labelled_pairs(0, pairs)
    publisher.labelled_pairs(0, pairs)
    got = inbox.wait_for(["pair-b", "pair-a"], deadline=float("inf"))
    assert [p.pair_id for p in got] == ["pair-b", "pair-a"] and got[1] == pairs[0]
    inbox.discard(["pair-a", "pair-b"])
    with pytest.raises(NotArrived, match="pair-a"):
        inbox.wait_for(["pair-a"], deadline=0.0)
    inbox.reset()  # after a Restore, trained rounds are read again from the beginning
    assert [p.pair_id for p in inbox.wait_for(["pair-a"], deadline=float("inf"))] == ["pair-a"]
    inbox.close()
    bus.close()


def test_feed_prefers_the_exact_version_asked_for() -> None:
    bus = InMemoryBus()
    publisher = RunPublisher(bus, "quickstart")
    feed = CheckpointFeed(bus, "quickstart")
    for v in (1, 2, 3):
        publisher.checkpoint(v, f"/ckpt/v{v}", None)
    feed.poll(0.0)
    assert feed.pick(2).version == 2  # type: ignore[union-attr]
    assert feed.pick(0).version == 3  # type: ignore[union-attr]
    assert feed.pick(4) is None
    publisher.checkpoint(2, "/ckpt/v2-retrained", None)
    feed.poll(0.0)
    assert feed.pick(2).uri == "/ckpt/v2-retrained" and feed.updates == 4  # type: ignore[union-attr]
    feed.close()
    bus.close()
