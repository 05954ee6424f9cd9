"""A run SIGKILLed mid-round and resumed pays for every judgement exactly once: the judge
server's completed requests equal the distinct judgements, and the resumed round takes the
answers paid for before the kill from the run directory's judgement cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from fake_openai import FakeReply
from live_judge_helpers import PROMPTS, CountingJudge, judge_endpoint, live_manifest, live_servers

from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.judge.rubric_prompts import ASPECTS

PER_ROUND = 2 * 3 * len(ASPECTS)
"""Rubric requests of one round: 2 prompts x 3 responses x 4 aspects."""
KILL_AT = PER_ROUND + 5
"""The request the run is killed on: the fifth of round 2 (round 1 is checkpointed)."""


class StopOnce(CountingJudge):
    """Counts completed replies; the ``KILL_AT``-th request waits until released, then fails
    (its client is dead by then: it is never answered, never counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, body: dict[str, Any], index: int) -> FakeReply:
        with self.lock:
            self.arrived += 1
            number = self.arrived
        if number == KILL_AT:
            self.reached.set()
            self.release.wait(60)
            raise RuntimeError("the client was killed")
        return super().__call__(body, index)


def test_sigkill_mid_round_then_resume_pays_each_judgement_once(tmp_path: Path) -> None:
    judge = StopOnce()
    with live_servers(judge, reply_in_thread=True) as (pool, judge_server):
        endpoint = judge_endpoint(judge_server.base_url, maxConcurrency=1, timeoutSeconds=120)
        manifest = live_manifest(
            tmp_path,
            pool.base_url,
            judge_server.base_url,
            models=3,
            pairsPerPrompt=2,
            judge={"kind": "rubric", "llm": {"endpoint": endpoint}},
        )
        log = (tmp_path / "run.log").open("wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefloop.cli", "run", str(manifest)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            assert judge.reached.wait(300), (tmp_path / "run.log").read_text()
            proc.kill()  # SIGKILL: no handler, no cleanup
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            judge.release.set()
        assert proc.returncode == -9
        assert judge.total == KILL_AT - 1
        run_dir = tmp_path / "run"
        assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "round-0001"

        assert main(["run", str(manifest), "--resume"]) == 0
        # every distinct judgement was completed exactly once, over both processes
        distinct = len(PROMPTS) * 3 * len(ASPECTS)
        assert len(judge.completed) == judge.total == distinct
        assert set(judge.completed.values()) == {1}
        assert judge_server.request_count == distinct + 1  # + the one killed in flight
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [1, 2]
    paid_before_kill = KILL_AT - 1 - PER_ROUND
    assert metrics[1]["judge_calls"] == PER_ROUND - paid_before_kill
    assert metrics[1]["judge_cache_hits"] == 2 * len(ASPECTS) + paid_before_kill
    assert len(read_dataset(dataset_file(run_dir))) == 2 * len(PROMPTS)
