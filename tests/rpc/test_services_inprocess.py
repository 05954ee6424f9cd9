"""Every servicer on a real loopback server (one in-process server hosts all five): happy
paths, bad requests with the right status and a message naming the problem, health, metrics,
token auth, TLS, graceful shutdown, and a property test that the server never crashes."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_helpers import (
    InProcessServer,
    context,
    expect,
    free_port,
    item,
    judge_pair,
    quickstart_items,
    shrunk_run,
)

from prefloop.acquisition import AcquisitionInput
from prefloop.acquisition.registry import rule_names
from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import JudgeRequest
from prefloop.rpc import (
    acquisition_service,
    generation_service,
    judge_service,
    reward_service,
    trainer_service,
)
from prefloop.rpc.clients import select_request
from prefloop.rpc.convert import item_to_msg, judge_request_to_msg
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig
from prefloop.rpc.tensors import to_tensor
from prefloop.v1 import (
    acquisition_pb2,
    acquisition_pb2_grpc,
    common_pb2,
    generation_pb2,
    generation_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
    reward_pb2,
    reward_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

RUN = common_pb2.RunRef(run="quickstart")
MAX_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def server(reference: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("inproc")
    metrics = ServiceMetrics()
    ctx = context(shrunk_run(reference.cache_dir), tmp, metrics)
    ctx.state_dir.mkdir(parents=True)
    judge = judge_service.JudgeServicer(ctx)
    registrars = [
        acquisition_service.register(acquisition_service.AcquisitionServicer(metrics, RUN.run)),
        judge_service.register(judge),
        generation_service.register(generation_service.GenerationServicer(ctx)),
        reward_service.register(reward_service.RewardServicer(ctx)),
        trainer_service.register(trainer_service.TrainerServicer(ctx)),
    ]
    config = ServerConfig(metrics_port=free_port(), max_message_bytes=MAX_BYTES)
    srv = InProcessServer(registrars, metrics, config)
    srv.ctx = ctx  # type: ignore[attr-defined]
    srv.judge = judge  # type: ignore[attr-defined]
    srv.metrics_port = config.metrics_port  # type: ignore[attr-defined]
    yield srv
    srv.stop()
    judge.close()


@pytest.fixture(scope="module")
def channel(server: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        server.address, options=[("grpc.max_send_message_length", 4 * MAX_BYTES)]
    ) as ch:
        yield ch


def acq_input(p: int = 4, n: int = 5, seed: int = 0) -> AcquisitionInput:
    rng = np.random.default_rng(seed)
    return AcquisitionInput(
        mean=rng.normal(size=(p, n)),
        std=rng.uniform(0.1, 1, size=(p, n)),
        mask=np.ones((p, n), bool),
        samples=rng.normal(size=(p, n, 4)),
    )


# -- acquisition ----
def test_acquisition_select_and_list_methods(channel: grpc.Channel) -> None:
    stub = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
    req = select_request("quickstart", acq_input(), method="delta_ucb", params={}, seed=3)
    a = stub.Select(req, timeout=30)
    b = stub.Select(req, timeout=30)
    assert len(a.pairs) == 4 and a == b
    assert all(p.first != p.second for p in a.pairs)
    names = [m.name for m in stub.ListMethods(acquisition_pb2.ListMethodsRequest()).methods]
    assert names == rule_names()


def test_acquisition_bad_requests(channel: grpc.Channel) -> None:
    stub = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
    inv = grpc.StatusCode.INVALID_ARGUMENT
    good = select_request("quickstart", acq_input(), method="delta_ucb", params={}, seed=3)

    bad = acquisition_pb2.SelectRequest()
    bad.CopyFrom(good)
    bad.method = "no_such_rule"
    expect(inv, ["no_such_rule", "delta_ucb"], stub.Select, bad)

    bad.CopyFrom(good)
    bad.params_json = '{"gamma": 1}'
    expect(inv, ["gamma"], stub.Select, bad)

    bad.CopyFrom(good)
    bad.params_json = "[1]"
    expect(inv, ["params_json"], stub.Select, bad)

    bad.CopyFrom(good)
    bad.mask.CopyFrom(to_tensor(np.ones((4, 3), bool)))
    expect(inv, ["mask.shape", "(4, 5)"], stub.Select, bad)

    bad.CopyFrom(good)
    bad.estimate.std.CopyFrom(to_tensor(np.ones((4, 5), np.float64)))
    bad.estimate.std.data = bad.estimate.std.data[:-8]
    expect(inv, ["estimate.std.data"], stub.Select, bad)

    empty = select_request("quickstart", acq_input(p=0), method="delta_ucb", params={}, seed=3)
    expect(inv, ["empty batch"], stub.Select, empty)

    one = acq_input()
    mask = one.mask.copy()
    mask[2, 1:] = False
    req = select_request(
        "quickstart",
        AcquisitionInput(one.mean, one.std, mask, one.samples),
        method="delta_ucb",
        params={},
        seed=1,
    )
    expect(inv, ["row 2"], stub.Select, req)

    huge = select_request("quickstart", acq_input(p=64, n=16), method="random", params={}, seed=1)
    huge.estimate.features.CopyFrom(to_tensor(np.zeros((64, 16, 384), np.float32)))
    expect(grpc.StatusCode.RESOURCE_EXHAUSTED, ["larger than max"], stub.Select, huge)


# -- judge ----
def pair_msg(k: int) -> common_pb2.PairToJudge:
    """Responses 0 and 2 of the k-th quickstart prompt, with the pair's real id."""
    return judge_pair(quickstart_items()[k], 0, 2)


def test_judge_records_and_never_rejudges(channel: grpc.Channel, server: Any) -> None:
    stub = judge_pb2_grpc.JudgeServiceStub(channel)
    first = stub.Judge(judge_pb2.JudgeRequest(run=RUN, pairs=[pair_msg(1), pair_msg(2)]))
    assert first.new_calls == 2
    for msg, verdict in zip([pair_msg(1), pair_msg(2)], first.annotations, strict=True):
        assert verdict.winner == (0 if msg.a.score > msg.b.score else 1)  # higher stored wins
    again = stub.Judge(judge_pb2.JudgeRequest(run=RUN, pairs=[pair_msg(2), pair_msg(3)]))
    assert again.new_calls == 1
    assert again.annotations[0] == first.annotations[1]
    assert {pair_msg(k).pair_id for k in (1, 2, 3)} <= set(server.judge.log.records)


def test_judge_bad_requests(channel: grpc.Channel) -> None:
    stub = judge_pb2_grpc.JudgeServiceStub(channel)
    inv = grpc.StatusCode.INVALID_ARGUMENT
    expect(inv, ["pairs", "empty"], stub.Judge, judge_pb2.JudgeRequest(run=RUN))
    other = common_pb2.RunRef(run="other")
    expect(
        inv,
        ["run.run", "other"],
        stub.Judge,
        judge_pb2.JudgeRequest(run=other, pairs=[pair_msg(4)]),
    )
    missing = pair_msg(4)
    missing.ClearField("b")
    expect(inv, ["pairs[0].b"], stub.Judge, judge_pb2.JudgeRequest(run=RUN, pairs=[missing]))
    nan_score = pair_msg(4)
    nan_score.a.score = float("nan")
    expect(
        inv,
        ["pairs[0].a.score", "NaN"],
        stub.Judge,
        judge_pb2.JudgeRequest(run=RUN, pairs=[nan_score]),
    )


# -- generation, reward, trainer ----
def test_generation_streams_prompts_in_order(channel: grpc.Channel) -> None:
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    items = [item(f"p{i}") for i in range(10)]
    req = generation_pb2.GenerateRequest(run=RUN, prompts=[item_to_msg(i) for i in items], seed=1)
    out = [r.prompt.prompt_id for r in stub.Generate(req, timeout=30)]
    assert out == [f"p{i}" for i in range(10)]
    inv = grpc.StatusCode.INVALID_ARGUMENT
    expect(inv, ["prompts", "empty"], stub.Generate, generation_pb2.GenerateRequest(run=RUN))
    short = generation_pb2.GenerateRequest(run=RUN, prompts=[item_to_msg(item("s", 1))])
    expect(inv, ["'s'"], stub.Generate, short)


def test_reward_score_evaluate_and_errors(channel: grpc.Channel) -> None:
    stub = reward_pb2_grpc.RewardServiceStub(channel)
    req = reward_pb2.ScoreRequest(
        run=RUN,
        prompts=[item_to_msg(item("a", 3)), item_to_msg(item("b", 2))],
        include_features=True,
    )
    est = stub.Score(req, timeout=60)
    assert list(est.mean.shape) == [2, 3] and list(est.features.shape)[:2] == [2, 3]
    ev = stub.Evaluate(
        reward_pb2.EvaluateRequest(run=RUN, prompts=[item_to_msg(item())]), timeout=60
    )
    assert "accuracy" in ev.metrics
    inv = grpc.StatusCode.INVALID_ARGUMENT
    expect(inv, ["prompts", "empty"], stub.Score, reward_pb2.ScoreRequest(run=RUN))
    late = reward_pb2.ScoreRequest(run=RUN, prompts=[item_to_msg(item())], min_model_version=99)
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(late, timeout=2)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_trainer_train_is_idempotent_and_restorable(channel: grpc.Channel, server: Any) -> None:
    from prefloop.data.records import PreferencePair
    from prefloop.rpc.convert import pair_to_msg

    it = item()
    pair = PreferencePair(
        "pp1", "quickstart", 0, it.prompt_id, it.prompt, it.responses[2], it.responses[0], 2, 0,
        "delta_ucb", "oracle",
    )  # fmt: skip
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    req = trainer_pb2.TrainRequest(
        run=RUN, pairs=[pair_to_msg(pair)], prompts_done=4, prompts_total=20, seed=5
    )
    a = stub.Train(req, timeout=60)
    b = stub.Train(req, timeout=60)
    assert a.model_version == b.model_version == 1 and a.metrics == b.metrics
    assert (server.ctx.checkpoint_dir / "quickstart" / "v000001.pt").exists()
    ck = stub.Restore(trainer_pb2.RestoreRequest(run="quickstart", version=0), timeout=60)
    assert ck.version == 0
    assert not (server.ctx.checkpoint_dir / "quickstart" / "v000001.pt").exists()
    inv = grpc.StatusCode.INVALID_ARGUMENT
    expect(
        inv, ["version", "7"], stub.Restore, trainer_pb2.RestoreRequest(run="quickstart", version=7)
    )
    expect(
        inv,
        ["pair_ids"],
        stub.Train,
        trainer_pb2.TrainRequest(run=RUN, pair_ids=["x"], prompts_total=1),
    )
    expect(inv, ["prompts_total"], stub.Train, trainer_pb2.TrainRequest(run=RUN, prompts_total=0))
    broken = trainer_pb2.TrainRequest(run=RUN, prompts_total=4)
    broken.pairs.add(pair_id="q", row_json="{}")
    expect(inv, ["pairs[0].row_json"], stub.Train, broken)


# -- health, metrics ----
def test_health_serving_for_every_service(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for svc in ["", "prefloop.v1.AcquisitionService", "prefloop.v1.JudgeService",
                "prefloop.v1.GenerationService", "prefloop.v1.RewardService",
                "prefloop.v1.TrainerService"]:  # fmt: skip
        r = stub.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING, svc


def test_metrics_endpoint_exposes_counters(channel: grpc.Channel, server: Any) -> None:
    stub = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
    stub.Select(select_request("quickstart", acq_input(), method="random", params={}, seed=1))
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    assert (
        'prefloop_rpc_requests_total{code="OK",method="Select",service="prefloop.v1.AcquisitionService"}'
        in body
    )
    assert 'code="INVALID_ARGUMENT"' in body
    for family in ["prefloop_rpc_latency_seconds_bucket", "prefloop_pairs_selected_total",
                   "prefloop_annotations_total", "prefloop_judge_tokens_total 0.0",
                   "prefloop_training_steps_total", "prefloop_checkpoint_version",
                   "prefloop_responses_generated_total"]:  # fmt: skip
        assert family in body, family


# -- property test ----
finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def select_requests(draw: Any) -> acquisition_pb2.SelectRequest:
    p = draw(st.integers(0, 4))
    n = draw(st.integers(0, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mask = rng.random((p, n)) < draw(st.floats(0.3, 1.0))
    inputs = AcquisitionInput(
        mean=rng.normal(size=(p, n)) * draw(st.sampled_from([1.0, 1e3])),
        std=np.abs(rng.normal(size=(p, n))),
        mask=mask,
        samples=rng.normal(size=(p, n, draw(st.integers(1, 4)))) if draw(st.booleans()) else None,
    )
    method = draw(st.sampled_from([*rule_names(), "bogus", ""]))
    params = draw(st.sampled_from([{}, {"beta": 2.0}, {"pairs_per_prompt": 2}, {"max_pairs": 3},
                                   {"nope": 1}, {"beta": "x"}]))  # fmt: skip
    return select_request(
        "quickstart", inputs, method=method, params=params, seed=draw(st.integers(0, 2**63 - 1))
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(req=select_requests())
def test_acquisition_never_crashes(
    channel: grpc.Channel, req: acquisition_pb2.SelectRequest
) -> None:
    stub = acquisition_pb2_grpc.AcquisitionServiceStub(channel)
    try:
        reply = stub.Select(req, timeout=30)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
        assert e.details()
    else:
        p, n = list(req.mask.shape)
        assert all(q.prompt_index < p and q.first < n and q.second < n for q in reply.pairs)


@st.composite
def judge_requests(draw: Any) -> judge_pb2.JudgeRequest:
    k = draw(st.integers(0, 4))
    pairs = []
    for _ in range(k):
        ids = st.text(min_size=0, max_size=6)
        score = st.one_of(st.none(), finite)
        it = PromptItem(
            draw(ids) or "p",
            draw(st.text(max_size=20)),
            tuple(
                Response(draw(st.text(max_size=5)), draw(st.text(max_size=20)), draw(score))
                for _ in range(2)
            ),
        )
        msg = judge_request_to_msg(JudgeRequest(draw(ids), it, it.responses[0], it.responses[1]))
        if draw(st.booleans()):
            msg.prompt.prompt_id = ""
        pairs.append(msg)
    run = draw(st.sampled_from(["quickstart", "other"]))
    return judge_pb2.JudgeRequest(run=common_pb2.RunRef(run=run), pairs=pairs)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(req=judge_requests())
def test_judge_never_crashes(channel: grpc.Channel, req: judge_pb2.JudgeRequest) -> None:
    stub = judge_pb2_grpc.JudgeServiceStub(channel)
    try:
        reply = stub.Judge(req, timeout=30)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
    else:
        assert [a.pair_id for a in reply.annotations] == [p.pair_id for p in req.pairs]


# -- auth, TLS, graceful shutdown ----
def test_token_auth(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    metrics = ServiceMetrics()
    srv = InProcessServer(
        [acquisition_service.register(acquisition_service.AcquisitionServicer(metrics, RUN.run))],
        metrics,
        ServerConfig(auth_token_file=token),
    )
    try:
        with grpc.insecure_channel(srv.address) as ch:
            stub = acquisition_pb2_grpc.AcquisitionServiceStub(ch)
            req = acquisition_pb2.ListMethodsRequest()
            for md in [(), (("authorization", "Bearer wrong"),)]:
                with pytest.raises(grpc.RpcError) as err:
                    stub.ListMethods(req, metadata=md, timeout=10)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "Bearer" in err.value.details()
            ok = stub.ListMethods(req, metadata=(("authorization", "Bearer s3cret"),), timeout=10)
            assert len(ok.methods) == len(rule_names())
    finally:
        srv.stop()


def test_tls_with_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    metrics = ServiceMetrics()
    srv = InProcessServer(
        [acquisition_service.register(acquisition_service.AcquisitionServicer(metrics, RUN.run))],
        metrics,
        ServerConfig(tls_cert=cert, tls_key=key),
    )
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{srv.port}", creds) as ch:
            stub = acquisition_pb2_grpc.AcquisitionServiceStub(ch)
            assert stub.ListMethods(acquisition_pb2.ListMethodsRequest(), timeout=10).methods
        with grpc.insecure_channel(srv.address) as plain:
            stub = acquisition_pb2_grpc.AcquisitionServiceStub(plain)
            with pytest.raises(grpc.RpcError) as err:
                stub.ListMethods(acquisition_pb2.ListMethodsRequest(), timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()


class SlowAcquisition(acquisition_service.AcquisitionServicer):
    def __init__(self, metrics: ServiceMetrics) -> None:
        super().__init__(metrics, RUN.run)
        self.started = threading.Event()

    async def ListMethods(self, request: Any, context: Any) -> Any:
        self.started.set()
        await asyncio.sleep(1.5)
        return await super().ListMethods(request, context)


def test_graceful_shutdown_finishes_in_flight_call() -> None:
    metrics = ServiceMetrics()
    servicer = SlowAcquisition(metrics)
    srv = InProcessServer(
        [acquisition_service.register(servicer)], metrics, ServerConfig(grace_seconds=10)
    )
    result: dict[str, Any] = {}
    with grpc.insecure_channel(srv.address) as ch:
        stub = acquisition_pb2_grpc.AcquisitionServiceStub(ch)

        def call() -> None:
            try:
                result["reply"] = stub.ListMethods(acquisition_pb2.ListMethodsRequest(), timeout=20)
            except grpc.RpcError as e:
                result["error"] = e.code()

        t = threading.Thread(target=call)
        t.start()
        assert servicer.started.wait(10)
        t0 = time.monotonic()
        srv.stop()
        t.join(20)
    assert "error" not in result and len(result["reply"].methods) == len(rule_names())
    assert time.monotonic() - t0 < 10
