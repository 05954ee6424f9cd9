"""A round whose generation step lost answers: no pair uses a missing answer, the failures count.

A pool model that fails after its retries gives a prompt no response (never a stand-in text).
Here the generation role drops some models' answers from a scored pool, as a failing endpoint
would, and records them in ``generation_failures``: one prompt keeps one answer, one keeps
none, one loses a single model. One round through the real round engine and embedded roles
(MiniLM, the stored-score oracle, the trainer) must pair only answers that exist, leave out the
prompts without a pair, and report the failures and the pool's tokens in the round metrics.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from prefloop.data.readers import load_prompt_items
from prefloop.data.records import PromptItem
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.checkpoint import RunState
from prefloop.engine.local_roles import LocalGeneration
from prefloop.engine.round_engine import RoundEngine
from prefloop.spec import load_activerun

pytestmark = pytest.mark.model

MODELS = ("m0", "m1", "m2", "m3")
LOST = {"q1": {"m0", "m1", "m2"}, "q2": set(MODELS), "q3": {"m3"}}
"""Prompt -> the models whose answer is lost."""


class LosingGenerator:
    """The stored pool, minus the answers of ``LOST``, with token counts on the rest."""

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        out = []
        for item in items:
            lost = LOST.get(item.prompt_id, set())
            kept = tuple(
                dataclasses.replace(r, prompt_tokens=10, completion_tokens=len(r.text.split()))
                for r in item.responses
                if r.model not in lost
            )
            failed = tuple(m for m in MODELS if m in lost)
            out.append(dataclasses.replace(item, responses=kept, generation_failures=failed))
        return out


def test_a_round_pairs_only_answers_that_exist(repo_root: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    with pool.open("w") as f:
        for p in range(6):
            responses = [
                {"model": m, "text": f"answer {k} to question {p}", "score": 0.1 + 0.2 * k}
                for k, m in enumerate(MODELS)
            ]
            f.write(json.dumps({"prompt_id": f"q{p}", "prompt": f"Q{p}?", "responses": responses}))
            f.write("\n")
    run = load_activerun(
        repo_root / "examples" / "quickstart.yaml",
        [
            f"spec.prompts.path={pool}",
            "spec.batchSize=6",
            "spec.evaluation.heldoutFraction=0.0",
            "spec.rewardModel.embedder.maxLengthTokens=32",
            f"spec.rewardModel.embedder.cacheDir={tmp_path / 'features'}",
            "spec.rewardModel.head.numHeads=4",
            "spec.trainer.epochsPerRound=1",
            "spec.budget.maxAnnotations=null",
            "spec.pairsPerPrompt=2",
            "spec.acquisition.method=random",
            "spec.acquisition.params={}",
        ],
    )
    roles, _, _ = build_embedded_roles(run, tmp_path / "run", None)
    roles.generation = LocalGeneration(LosingGenerator())
    engine = RoundEngine(run, roles, tmp_path / "run", load_prompt_items(pool), [])
    state = RunState(run.fingerprint())
    rows = engine.run_one_round(state)
    (metrics,) = state.metrics

    assert metrics["generation_failures"] == 3 + 4 + 1
    assert metrics["pool_responses"] == 6 * 4 - 8
    assert metrics["generation_prompt_tokens"] == 10 * (6 * 4 - 8)
    assert metrics["prompts_without_distinct_pair"] == 2  # q1 (one answer) and q2 (none)
    assert rows and {r["prompt_id"] for r in rows} <= {"q0", "q3", "q4", "q5"}
    for row in rows:
        lost = LOST.get(row["prompt_id"], set())
        assert row["chosen_model"] not in lost and row["rejected_model"] not in lost
