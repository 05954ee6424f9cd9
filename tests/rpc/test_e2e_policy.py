"""The policy in the loop (``trainer.kind: policy``) through the five ``prefloop serve --kafka``
subprocesses and a real Tansu broker gives the embedded run's dataset byte for byte (issue 11).

A 3-round ADPO run with a tiny Llama policy: the reward service serves the policy's implicit
rewards and MC-dropout samples, the trainer service takes the DPO steps on the pairs it reads
from the annotations topic and announces every new policy version on the checkpoints topic (the
weights inline: the tiny policy is under the 1 MiB limit), from which the reward service loads
it. The judge judges each pair once. SIGKILLing the trainer service mid-run changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rpc_helpers import (
    QUICKSTART,
    KillOnCall,
    judge_log_lines,
    run_connected,
    shrunk_run,
    started_services,
)

from _tiny_llama import policy_overrides, save_tiny_causal_lm
from prefloop.bus.base import topic_name
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.payloads import checkpoint_from_value
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.engine.runner import execute
from prefloop.rpc.dataplane import CheckpointFeed

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class PolicyReference:
    model_dir: Path
    extra: tuple[str, ...]
    embedded: Path
    dataset: str
    judged: int


@pytest.fixture(scope="module")
def policy_reference(tmp_path_factory: pytest.TempPathFactory) -> PolicyReference:
    """The tiny policy and the embedded 3-round ADPO run every service-mode run must equal."""
    base = tmp_path_factory.mktemp("policy-reference")
    texts = ["name a colour", "red", "blue is nice", "the quick brown fox"]
    model_dir = save_tiny_causal_lm(base / "lm", texts, seed=1)
    extra = tuple(policy_overrides(model_dir, 3))
    embedded = base / "embedded"
    with open(os.devnull, "w") as sink:
        execute(
            shrunk_run(base / "features", extra),
            manifest_dir=QUICKSTART.parent,
            output=str(embedded),
            console=Console(file=sink),
        )
    rows = read_dataset(dataset_file(embedded))
    judged = {r["pair_id"] for r in rows if r["label_source"] == "judge"}
    assert judged and len(judged) < len(rows)  # ADPO queried some pairs, pseudo-labelled others
    return PolicyReference(
        model_dir, extra, embedded, dataset_file(embedded).read_text(), len(judged)
    )


def test_policy_run_through_services_equals_embedded(
    policy_reference: PolicyReference, kafka_bootstrap: str, tmp_path: Path
) -> None:
    ref, cache = policy_reference, tmp_path / "features"
    with started_services(cache, tmp_path, kafka_bootstrap, ref.extra) as procs:
        run_connected(procs, cache, tmp_path / "svc", kafka=kafka_bootstrap, extra=ref.extra)
    assert dataset_file(tmp_path / "svc").read_text() == ref.dataset
    curves = [
        [json.loads(line)["heldout_accuracy"] for line in (d / "metrics.jsonl").open()]
        for d in (ref.embedded, tmp_path / "svc")
    ]
    assert curves[0] == curves[1] and len(curves[0]) == 3  # Evaluate: the same held-out metric
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == ref.judged

    bus = KafkaBus(kafka_bootstrap, client_id="prefloop-tests")
    try:
        records = list(bus.read_all(topic_name("quickstart", "checkpoints"), timeout_seconds=1.0))
    finally:
        bus.close()
    events = [checkpoint_from_value(r.value) for r in records]
    assert sorted({e.version for e in events}) == [1, 2, 3]  # one policy version per round
    weights = CheckpointFeed.head_state(events[-1])
    assert "lm_head.weight" in weights  # the announcement carries the policy's weights


@pytest.mark.long  # a restart scenario: make test-long (keeps make test < 15 min)
def test_policy_trainer_sigkilled_mid_run_changes_nothing(
    policy_reference: PolicyReference, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The trainer service SIGKILLed before round 2's Train: restarted, it reloads the policy,
    AdamW state and labelled pairs it saved after round 1; round 3 selects with what it
    trains, and the dataset and the held-out curve are unchanged."""
    ref, cache = policy_reference, tmp_path / "features"
    killers: list[KillOnCall] = []
    with started_services(cache, tmp_path, kafka_bootstrap, ref.extra) as procs:

        def wrap(roles: Any) -> None:
            killers.append(KillOnCall(roles.trainer, "train", procs["trainer"], at=2))

        run_connected(procs, cache, tmp_path / "svc", wrap, kafka=kafka_bootstrap, extra=ref.extra)
        assert procs["trainer"].starts == 2 and killers[0].calls == 3
    assert dataset_file(tmp_path / "svc").read_text() == ref.dataset
    curves = [
        [json.loads(line)["heldout_accuracy"] for line in (d / "metrics.jsonl").open()]
        for d in (ref.embedded, tmp_path / "svc")
    ]
    assert curves[0] == curves[1]
    verdicts = judge_log_lines(tmp_path)
    assert len(verdicts) == len({v["pair_id"] for v in verdicts}) == ref.judged
