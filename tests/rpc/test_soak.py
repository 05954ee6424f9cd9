"""Soak (issue 8): 100 concurrent clients send a seeded mix of valid and invalid requests to all
five ``prefloop serve`` processes for a bounded time (a 25 s warm-up, then at most 90 s, all on
loopback). Afterwards every service still answers SERVING, no service's resident memory grew by
10% or more over the soak, and the judge's log holds each pair once, however many clients asked
for it at the same time.

Not in the default run (marker ``soak``): ``pytest -m soak tests/rpc/test_soak.py``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rpc_helpers import (
    ServiceProcess,
    item,
    judge_log_lines,
    judge_pair,
    quickstart_items,
    started_services,
)

from prefloop.acquisition import AcquisitionInput
from prefloop.rpc.clients import select_request
from prefloop.rpc.convert import item_to_msg
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

pytestmark = pytest.mark.soak

CLIENTS = 100
SOAK_SECONDS = 90.0
WARMUP_SECONDS = 25.0
"""Warm-up plus soak: at most 115 s of traffic."""
REQUESTS_PER_CLIENT = 40
RUN = common_pb2.RunRef(run="quickstart")
RSS_GROWTH_LIMIT = 0.10


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def acq_input(rng: np.random.Generator) -> AcquisitionInput:
    mean = rng.normal(size=(4, 5))
    return AcquisitionInput(mean, np.abs(rng.normal(size=(4, 5))) + 0.1, np.ones((4, 5), bool))


class Traffic:
    """The request mix: each entry sends one request and says whether it should succeed."""

    def __init__(self, procs: dict[str, ServiceProcess]) -> None:
        self.channels = {r: grpc.insecure_channel(p.address) for r, p in procs.items()}
        self.acq = acquisition_pb2_grpc.AcquisitionServiceStub(self.channels["acquisition"])
        self.judge = judge_pb2_grpc.JudgeServiceStub(self.channels["judge"])
        self.gen = generation_pb2_grpc.GenerationServiceStub(self.channels["generation"])
        self.reward = reward_pb2_grpc.RewardServiceStub(self.channels["reward"])
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(self.channels["trainer"])
        self.items = quickstart_items()[:12]
        self.outcomes: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.lock = threading.Lock()

    def mix(self, rng: random.Random) -> list[tuple[str, Callable[[], Any], bool]]:
        """One of each request kind, with ``rng`` choosing prompts and pairs."""
        nrng = np.random.default_rng(rng.randrange(2**32))
        it = self.items[rng.randrange(len(self.items))]
        i, j = rng.sample(range(len(it.responses)), 2)
        good_select = select_request(
            "quickstart", acq_input(nrng), method="delta_ucb", params={}, seed=rng.randrange(99)
        )
        bad_select = acquisition_pb2.SelectRequest()
        bad_select.CopyFrom(good_select)
        bad_select.method = "no_such_rule"
        wrong_run = common_pb2.RunRef(run="other")
        return [
            ("select", lambda: self.acq.Select(good_select, timeout=60), True),
            ("select-bad", lambda: self.acq.Select(bad_select, timeout=60), False),
            ("methods", lambda: self.acq.ListMethods(acquisition_pb2.ListMethodsRequest()), True),
            (
                "judge",
                lambda: self.judge.Judge(
                    judge_pb2.JudgeRequest(run=RUN, pairs=[judge_pair(it, i, j)]), timeout=60
                ),
                True,
            ),
            ("judge-empty", lambda: self.judge.Judge(judge_pb2.JudgeRequest(run=RUN)), False),
            (
                "judge-wrong-run",
                lambda: self.judge.Judge(
                    judge_pb2.JudgeRequest(run=wrong_run, pairs=[judge_pair(it, i, j)]),
                    timeout=60,
                ),
                False,
            ),
            (
                "generate",
                lambda: list(
                    self.gen.Generate(
                        generation_pb2.GenerateRequest(
                            run=RUN, prompts=[item_to_msg(item(f"g{rng.randrange(9)}"))], seed=1
                        ),
                        timeout=60,
                    )
                ),
                True,
            ),
            (
                "generate-empty",
                lambda: list(self.gen.Generate(generation_pb2.GenerateRequest(run=RUN))),
                False,
            ),
            (
                "score",
                lambda: self.reward.Score(
                    reward_pb2.ScoreRequest(run=RUN, prompts=[item_to_msg(it)]), timeout=120
                ),
                True,
            ),
            ("score-empty", lambda: self.reward.Score(reward_pb2.ScoreRequest(run=RUN)), False),
            (
                "train-wrong-run",
                lambda: self.trainer.Train(trainer_pb2.TrainRequest(run=wrong_run), timeout=60),
                False,
            ),
        ]

    def send(self, rng: random.Random) -> None:
        name, fn, should_succeed = rng.choice(self.mix(rng))
        try:
            fn()
            ok, code = True, "OK"
        except grpc.RpcError as e:
            ok, code = False, e.code().name
        with self.lock:
            self.outcomes[f"{name}:{code}"] += 1
            if ok != should_succeed or code in ("INTERNAL", "UNKNOWN"):
                self.unexpected.append(f"{name}: {code}")

    def client(self, seed: int, deadline: float, requests: int) -> None:
        rng = random.Random(seed)
        for _ in range(requests):
            if time.monotonic() > deadline:
                return
            self.send(rng)

    def run_clients(self, n: int, seconds: float, requests: int, seed: int) -> None:
        deadline = time.monotonic() + seconds
        threads = [
            threading.Thread(target=self.client, args=(seed + k, deadline, requests))
            for k in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 180)
        assert not any(t.is_alive() for t in threads), "a client hung"

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()


def test_soak_mixed_traffic_from_100_clients(reference: Any, tmp_path: Path) -> None:
    with started_services(reference.cache_dir, tmp_path) as procs:
        traffic = Traffic(procs)
        try:
            traffic.run_clients(CLIENTS, WARMUP_SECONDS, 2, seed=1000)  # pools, caches, models
            pids = {r: p.proc.pid for r, p in procs.items() if p.proc is not None}
            before = {r: rss_bytes(pid) for r, pid in pids.items()}
            traffic.run_clients(CLIENTS, SOAK_SECONDS, REQUESTS_PER_CLIENT, seed=1)
            after = {r: rss_bytes(pid) for r, pid in pids.items()}
            for role, proc in procs.items():
                with grpc.insecure_channel(proc.address) as ch:
                    reply = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=30
                    )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, role
        finally:
            traffic.close()
    assert not traffic.unexpected, Counter(traffic.unexpected).most_common(10)
    sent = sum(traffic.outcomes.values())
    assert sent >= CLIENTS * 10, traffic.outcomes  # the soak really ran
    growth = {r: after[r] / before[r] - 1.0 for r in before}
    print(f"soak: {sent} requests; RSS growth { ({r: f'{g:+.1%}' for r, g in growth.items()}) }")
    assert all(g < RSS_GROWTH_LIMIT for g in growth.values()), growth
    verdicts = judge_log_lines(tmp_path)
    pair_ids = [v["pair_id"] for v in verdicts]
    assert pair_ids and len(pair_ids) == len(set(pair_ids))
