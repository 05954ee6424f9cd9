"""``python -m prefloop.rpc.latency``: p50 / p99 latency of AcquisitionService.Select.

Why: the acquisition step sits on the round's critical path, and in service mode it adds a
serialisation + loopback round trip to the rule itself. This starts a real server on loopback
(or uses ``--address``), sends the same kind of batch the engine sends (P prompts x N responses
with mean, std, samples and D-wide features) and reports the latency distribution.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import grpc
import numpy as np

from prefloop.acquisition import AcquisitionInput
from prefloop.rpc.acquisition_service import AcquisitionServicer, register
from prefloop.rpc.clients import select_request
from prefloop.rpc.metrics import ServiceMetrics
from prefloop.rpc.server import ServerConfig, start_server
from prefloop.v1 import acquisition_pb2_grpc


def batch(p: int, n: int, s: int, d: int, seed: int = 0) -> AcquisitionInput:
    """A random batch shaped like the engine's (float64 estimates, float32 features)."""
    rng = np.random.default_rng(seed)
    return AcquisitionInput(
        mean=rng.normal(size=(p, n)),
        std=rng.uniform(0.05, 1.0, size=(p, n)),
        mask=np.ones((p, n), bool),
        samples=rng.normal(size=(p, n, s)),
        features=rng.normal(size=(p, n, d)).astype(np.float32),
    )


def measure(address: str, method: str, inputs: AcquisitionInput, repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` Select calls (after 3 warm-up calls)."""
    req = select_request("bench", inputs, method=method, params={}, seed=1)
    with grpc.insecure_channel(address) as ch:
        stub = acquisition_pb2_grpc.AcquisitionServiceStub(ch)
        for _ in range(3):
            stub.Select(req, timeout=60)
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            stub.Select(req, timeout=60)
            out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print p50 / p99 / mean latency in milliseconds."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", help="an existing AcquisitionService (default: start one)")
    ap.add_argument("--method", default="delta_ucb")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--responses", type=int, default=16)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--features", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args(argv)
    address = args.address
    loop = asyncio.new_event_loop()
    if address is None:
        threading.Thread(target=loop.run_forever, daemon=True).start()
        metrics = ServiceMetrics()
        running = asyncio.run_coroutine_threadsafe(
            start_server(
                ServerConfig(), [register(AcquisitionServicer(metrics, "bench"))], metrics
            ),
            loop,
        ).result()
        address = f"127.0.0.1:{running.port}"
    inputs = batch(args.prompts, args.responses, args.samples, args.features)
    lat = np.array(measure(address, args.method, inputs, args.repeats)) * 1000
    print(
        f"Select {args.method} {args.prompts}x{args.responses} (S={args.samples}, "
        f"D={args.features}), {args.repeats} calls: p50 {np.percentile(lat, 50):.2f} ms, "
        f"p99 {np.percentile(lat, 99):.2f} ms, mean {lat.mean():.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
