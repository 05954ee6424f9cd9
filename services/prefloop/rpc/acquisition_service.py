"""AcquisitionService: the registry's selection rules over gRPC (stateless).

A thin adapter over :func:`prefloop.acquisition.select`: it checks the request is for the run
it serves (like the other four services), decodes the reward estimates,
checks every shape against the mask (and the values a rule cannot survive: NaN, negative std,
a prompt with fewer than two responses), runs the rule with a generator seeded by the request
and returns the pairs. Any problem with the request becomes INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np

from prefloop.acquisition import AcquisitionInput, Selection, select
from prefloop.acquisition.base import AcquisitionError
from prefloop.acquisition.registry import check_params, get_rule, rule_names
from prefloop.rpc.common import check_run
from prefloop.rpc.convert import (
    RequestError,
    check_estimate_values,
    estimate_arrays,
    json_object,
    selection_to_pairs,
    to_json,
)
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import Registrar
from prefloop.rpc.tensors import check_no_infinity, from_tensor, optional_tensor
from prefloop.v1 import acquisition_pb2, acquisition_pb2_grpc


def decode_select_request(
    request: acquisition_pb2.SelectRequest,
) -> tuple[str, dict[str, Any], AcquisitionInput]:
    """Method, parameters and inputs of a SelectRequest, every field checked."""
    if not request.method:
        raise RequestError(f"method: empty; choose one of: {', '.join(rule_names())}")
    get_rule(request.method)
    params = json_object(request.params_json, "params_json")
    check_params(request.method, params)
    if not request.HasField("estimate"):
        raise RequestError("estimate: missing")
    arrays = estimate_arrays(request.estimate)
    mean = arrays["mean"]
    assert mean is not None
    p, n = mean.shape
    if p == 0:
        raise RequestError("estimate.mean: empty batch (0 prompts)")
    mask = from_tensor(request.mask, "mask", kinds="b", shape=(p, n))
    counts = mask.sum(axis=1)
    if int(counts.min()) < 2:
        row = int(np.argmin(counts))
        raise RequestError(f"mask: prompt row {row} has {int(counts[row])} response(s); need >= 2")
    check_estimate_values(arrays, mask, "estimate")
    judge_scores = optional_tensor(request.judge_scores, "judge_scores", kinds="f", shape=(p, n))
    if judge_scores is not None:
        check_no_infinity(judge_scores, "judge_scores")
    models: np.ndarray | None = None
    if request.models:
        if len(request.models) != p * n:
            raise RequestError(f"models: {len(request.models)} names, expected P*N = {p * n}")
        models = np.array(list(request.models), dtype=object).reshape(p, n)
    inputs = AcquisitionInput(
        mean=mean,
        std=arrays["std"],  # type: ignore[arg-type]
        mask=mask,
        samples=arrays["samples"],
        features=arrays["features"],
        pref_mean=arrays["pref_mean"],
        pref_var=arrays["pref_var"],
        judge_scores=judge_scores,
        models=models,
    )
    return request.method, params, inputs


def run_rule(method: str, params: dict[str, Any], inputs: AcquisitionInput, seed: int) -> Selection:
    """Run the rule; a parameter of the wrong type is the caller's fault (params_json)."""
    try:
        return select(method, inputs, np.random.default_rng(seed), **params)
    except AcquisitionError:
        raise
    except (TypeError, ValueError) as e:
        raise RequestError(f"params_json: rule {method!r} rejected its parameters: {e}") from e


class AcquisitionServicer(acquisition_pb2_grpc.AcquisitionServiceServicer):
    """Select and ListMethods; rules run in a worker thread so health checks stay responsive.

    Args:
        metrics: the service's Prometheus metrics.
        run_name: the run this service serves; a Select for another run is INVALID_ARGUMENT.
    """

    def __init__(self, metrics: ServiceMetrics, run_name: str) -> None:
        self.metrics = metrics
        self.run_name = run_name

    async def Select(
        self, request: acquisition_pb2.SelectRequest, context: grpc.aio.ServicerContext
    ) -> acquisition_pb2.SelectResponse:
        check_run(self.run_name, request.run)
        method, params, inputs = decode_select_request(request)
        sel = await asyncio.to_thread(run_rule, method, params, inputs, int(request.seed))
        self.metrics.pairs_selected.inc(sel.size)
        return acquisition_pb2.SelectResponse(
            pairs=selection_to_pairs(sel), info_json=to_json(sel.info)
        )

    async def ListMethods(
        self, request: acquisition_pb2.ListMethodsRequest, context: grpc.aio.ServicerContext
    ) -> acquisition_pb2.ListMethodsResponse:
        methods = []
        for name in rule_names():
            info = get_rule(name)
            methods.append(
                acquisition_pb2.Method(
                    name=name,
                    kind=info.kind,
                    needs=sorted(info.needs),
                    paper=info.paper,
                    summary=info.summary,
                    params_json=to_json(info.parameters()),
                )
            )
        return acquisition_pb2.ListMethodsResponse(methods=methods)


def register(servicer: AcquisitionServicer) -> Registrar:
    """A registrar for :func:`prefloop.rpc.server.start_server`."""

    def add(server: grpc.aio.Server) -> str:
        acquisition_pb2_grpc.add_AcquisitionServiceServicer_to_server(servicer, server)
        return str(acquisition_pb2.DESCRIPTOR.services_by_name["AcquisitionService"].full_name)

    return add
