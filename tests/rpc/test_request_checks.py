"""Requests the services must refuse, naming the field (issue 8, item 5).

A real AcquisitionService on loopback: a Select for another run is refused like the other four
services refuse one; infinite ``judge_scores`` are refused (NaN still marks a missing score); a
tensor shape whose element count overflows int64 is refused naming the field, not with numpy's
bare message.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from rpc_helpers import InProcessServer, expect

from prefloop.acquisition import AcquisitionInput
from prefloop.rpc import acquisition_service
from prefloop.rpc.clients import select_request
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig
from prefloop.v1 import acquisition_pb2, acquisition_pb2_grpc, common_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def stub() -> Iterator[acquisition_pb2_grpc.AcquisitionServiceStub]:
    metrics = ServiceMetrics()
    servicer = acquisition_service.AcquisitionServicer(metrics, "quickstart")
    srv = InProcessServer([acquisition_service.register(servicer)], metrics, ServerConfig())
    try:
        with grpc.insecure_channel(srv.address) as ch:
            yield acquisition_pb2_grpc.AcquisitionServiceStub(ch)
    finally:
        srv.stop()


def request(
    run: str = "quickstart", judge_scores: np.ndarray | None = None
) -> acquisition_pb2.SelectRequest:
    rng = np.random.default_rng(8)
    inputs = AcquisitionInput(
        mean=rng.normal(size=(3, 4)),
        std=rng.uniform(0.1, 1.0, size=(3, 4)),
        mask=np.ones((3, 4), bool),
        samples=rng.normal(size=(3, 4, 2)),
        judge_scores=judge_scores,
    )
    return select_request(run, inputs, method="random", params={}, seed=1)


def test_select_for_another_run_is_refused(
    stub: acquisition_pb2_grpc.AcquisitionServiceStub,
) -> None:
    assert len(stub.Select(request(), timeout=30).pairs) == 3
    expect(INVALID, ["run.run", "'quickstart'", "'other-run'"], stub.Select, request("other-run"))


def test_infinite_judge_scores_are_refused(
    stub: acquisition_pb2_grpc.AcquisitionServiceStub,
) -> None:
    scores = np.full((3, 4), 0.5)
    scores[1, 2] = np.nan  # a missing score: allowed
    assert len(stub.Select(request(judge_scores=scores), timeout=30).pairs) == 3
    for bad in (np.inf, -np.inf):
        scores[2, 0] = bad
        expect(INVALID, ["judge_scores", "infinite", "(2, 0)"], stub.Select,
               request(judge_scores=scores))  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ([2**32, 2**32], ["estimate.mean.data", "do not match shape"]),  # wraps to 0 in int64
        ([0, 2**63 - 1], ["estimate.mean.shape", "not a valid array shape"]),  # 0 bytes, too big
    ],
)
def test_an_overflowing_shape_names_the_field(
    stub: acquisition_pb2_grpc.AcquisitionServiceStub, shape: list[int], words: list[str]
) -> None:
    bad = request()
    bad.estimate.mean.CopyFrom(common_pb2.Tensor(shape=shape, dtype="float64", data=b""))
    expect(INVALID, words, stub.Select, bad)
