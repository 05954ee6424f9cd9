"""ADPO in the policy loop on constructed implicit-reward margins (issue 11).

A pool of two-response prompts whose implicit rewards are set by the test, so every prompt's
margin m = r(a) - r(b) is known: the policy's reward role runs for real (tiny Llama, MC dropout)
and its served mean is then replaced by the constructed rewards. Through the real round engine,
ADPO's threshold rule (``acquisition/adpo.py``: a query when |m| <= gamma, else the pseudo-label
sign(m)) decides exactly which pairs go to the judge: the judge is called that many times, the
pseudo-labelled pairs prefer the higher-reward response, ``maxAnnotations`` counts queries only
(a budget equal to the number of queries still lets every pseudo-label through) and the round
metrics report queries and pseudo-labels apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from _tiny_llama import save_tiny_causal_lm
from prefloop.data.records import PromptItem
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.local_roles import LocalJudge
from prefloop.engine.roles import RewardRole, RewardScores
from prefloop.engine.runner import execute
from prefloop.spec import load_activerun

GAMMA = 0.05
MARGINS = [0.0, 0.03, -0.05, 0.049, 0.051, -0.2, 0.5, -0.06, 0.01, 1.5, -0.04, 0.3]
"""r(a) - r(b) per prompt; +-0.05 sits exactly on the threshold (a query)."""


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _pool(path: Path) -> dict[str, float]:
    """Two responses per prompt; returns the constructed implicit reward of every text."""
    rewards: dict[str, float] = {}
    lines = []
    for p, m in enumerate(MARGINS):
        a, b = f"answer a{p}", f"reply b{p}"
        rewards[a], rewards[b] = m, 0.0
        responses = [
            {"model": "m0", "text": a, "score": 0.2 + 0.05 * (p % 3)},
            {"model": "m1", "text": b, "score": 0.6 - 0.05 * (p % 2)},
        ]
        lines.append({"prompt_id": f"p{p}", "prompt": f"question {p}?", "responses": responses})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return rewards


class ConstructedMargins:
    """The policy's reward role with its served mean replaced by constructed rewards."""

    def __init__(self, inner: RewardRole, rewards: dict[str, float]) -> None:
        self.inner = inner
        self.rewards = rewards

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        real = self.inner.score(items, mask)
        mean = np.zeros(mask.shape)
        for p, it in enumerate(items):
            for n, r in enumerate(it.responses):
                mean[p, n] = self.rewards[r.text]
        return replace(real, mean=mean)

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        return self.inner.evaluate(items)


def test_adpo_queries_follow_the_threshold_on_constructed_margins(
    repo_root: Path, tmp_path: Path
) -> None:
    pool = tmp_path / "pool.jsonl"
    rewards = _pool(pool)
    model_dir = save_tiny_causal_lm(tmp_path / "lm", [*rewards, "question 1?"], seed=2)
    queries = [abs(m) <= GAMMA for m in MARGINS]
    n_queries = sum(queries)
    assert 0 < n_queries < len(MARGINS)
    manifest = repo_root / "examples" / "quickstart.yaml"
    run = load_activerun(
        manifest,
        [
            f"spec.prompts.path={pool}",
            "spec.prompts.shuffle=false",
            "spec.batchSize=4",
            "spec.seed=11",
            "spec.evaluation.heldoutFraction=0",
            "spec.rewardModel.sourceModels.enabled=false",  # the margins are the policy's own
            "spec.trainer.kind=policy",
            f"spec.trainer.policy.model={model_dir}",
            "spec.trainer.policy.batchSize=2",
            "spec.acquisition.method=adpo",
            f"spec.acquisition.params={{gamma: {GAMMA}, pairing: random}}",
            f"spec.budget.maxAnnotations={n_queries}",  # exactly the queries
            "spec.output.includePseudoLabels=true",
        ],
    )
    out = tmp_path / "run"
    roles, _, judge = build_embedded_roles(run, out, manifest.parent)
    roles.reward = ConstructedMargins(roles.reward, rewards)
    result = execute(
        run, manifest_dir=manifest.parent, output=str(out), roles=roles, console=Console(quiet=True)
    )

    assert isinstance(judge, LocalJudge)
    assert judge.calls == n_queries  # the judge saw exactly the |m| <= gamma pairs
    by_prompt = {row["prompt_id"]: row for row in result.rows}
    assert sorted(by_prompt) == sorted(f"p{p}" for p in range(len(MARGINS)))
    for p, (m, query) in enumerate(zip(MARGINS, queries, strict=True)):
        row = by_prompt[f"p{p}"]
        assert row["label_source"] == ("judge" if query else "pseudo"), (p, m)
        if not query:  # the pseudo-label has the sign of the margin
            winner = f"answer a{p}" if m > 0 else f"reply b{p}"
            assert row["chosen"][-1]["content"] == winner, (p, m)

    metrics = result.state.metrics
    assert [m["round"] for m in metrics] == [1, 2, 3]  # the budget did not stop it early
    assert result.state.stop_reason == "prompts exhausted"
    assert result.state.annotations_used == n_queries  # only queries count
    for r, m in enumerate(metrics):
        block = queries[4 * r : 4 * r + 4]
        assert m["pairs_judged"] == m["annotations_this_round"] == sum(block)
        assert m["pairs_self_labelled"] == len(block) - sum(block)
    assert sum(m["pairs_self_labelled"] for m in metrics) == len(MARGINS) - n_queries
