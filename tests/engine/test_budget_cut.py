"""Issue 7 item 3: a budget cut keeps pairs the way each rule declares, not by raw score.

The last round of a run often cannot afford every pair its rule picked. A rule whose score ranks
the whole batch by informativeness (``truncation="score"``) keeps its best-scored pairs: the cut
equals asking it for fewer pairs. Every other rule keeps a seeded random subset: ADPO's score is a
signed margin (highest = most confident), MaxMinLCB's the leader's LCB (highest = least
ambiguous), DTS has none (NaN), per-prompt rules rank only within a prompt.

One round per rule through the real round engine and embedded roles; the acquisition role is
wrapped to record the selection the rule returned before the engine cut it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prefloop.acquisition import AcquisitionInput, Selection, get_rule, rule_names
from prefloop.data.readers import load_prompt_items
from prefloop.engine.budget import priority_order
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.checkpoint import RunState, derive_seed
from prefloop.engine.round_engine import Roles, RoundEngine, pair_id, split_prompts
from prefloop.spec import ActiveRun, load_activerun

pytestmark = pytest.mark.model

BUDGET = 3
BATCH = 8


class RecordingAcquisition:
    """The acquisition role, keeping every selection the rule returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.selections: list[Selection] = []

    def select(
        self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
    ) -> Selection:
        sel = self.inner.select(inputs, method=method, params=params, seed=seed)
        self.selections.append(sel)
        return sel


def _run(repo_root: Path, cache: Path, method: str, params: str) -> ActiveRun:
    return load_activerun(
        repo_root / "examples" / "quickstart.yaml",
        [
            "spec.prompts.limit=20",
            "spec.evaluation.shadowRandom=false",
            "spec.rewardModel.sourceModels.enabled=false",  # the cut, on the head's own scores
            f"spec.batchSize={BATCH}",
            "spec.evaluation.heldoutFraction=0.0",
            "spec.rewardModel.embedder.maxLengthTokens=32",
            f"spec.rewardModel.embedder.cacheDir={cache}",
            "spec.rewardModel.head.numHeads=4",
            "spec.trainer.epochsPerRound=1",
            f"spec.budget.maxAnnotations={BUDGET}",
            f"spec.acquisition.method={method}",
            f"spec.acquisition.params={params}",
        ],
    )


@pytest.fixture(scope="module")
def roles(
    repo_root: Path, feature_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Roles:
    run = _run(repo_root, feature_cache_dir, "random", "{}")
    built, _, _ = build_embedded_roles(run, tmp_path_factory.mktemp("cut"), None)
    built.acquisition = RecordingAcquisition(built.acquisition)
    return built


CASES = {
    # rule: params that make it return more judge-bound pairs than the budget allows
    "us_dpo": "{max_pairs: 8}",
    "ae_dpo": "{max_pairs: 8}",
    "adpo": "{gamma: 100.0}",
    "maxmin_lcb": "{}",
    "dts": "{}",
    "random": "{}",
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_budget_cut_follows_the_rules_declaration(
    method: str, repo_root: Path, feature_cache_dir: Path, tmp_path: Path, roles: Roles
) -> None:
    run = _run(repo_root, feature_cache_dir, method, CASES[method])
    pool, _ = split_prompts(run, load_prompt_items(repo_root / "data/alpacaeval/sample100.jsonl"))
    engine = RoundEngine(run, roles, tmp_path, pool[:20], [])
    state = RunState(run.fingerprint())
    rows = engine.run_one_round(state)
    recorder = roles.acquisition
    assert isinstance(recorder, RecordingAcquisition)
    full = recorder.selections[-1]
    assert full.size > BUDGET and np.all(full.pseudo_label == 0)
    assert len(rows) == BUDGET == state.annotations_used
    assert state.metrics[-1]["budget_truncated"] == full.size - BUDGET

    items = engine.pool[:BATCH]
    ids = [
        pair_id(run.metadata.name, items[p], items[p].responses[i], items[p].responses[j])
        for p, i, j in zip(full.prompt_index, full.first, full.second, strict=True)
    ]
    kept = {row["pair_id"] for row in rows}
    rule = get_rule(method)
    by_score = {
        ids[k] for k in np.argsort(-np.nan_to_num(full.score, nan=-np.inf), kind="stable")[:BUDGET]
    }
    if rule.truncation == "score":
        assert kept == by_score
    else:
        seed = derive_seed(run.spec.seed, 0, "truncation")
        assert kept == {ids[k] for k in priority_order(full.score, "random", seed)[:BUDGET]}
        assert kept != {ids[k] for k in range(BUDGET)}  # not batch order
        if np.isfinite(full.score).all():
            assert kept != by_score  # not the highest (signed) score


def test_rules_declare_their_cut() -> None:
    """Score cuts only where the score ranks the whole batch, higher = more informative."""
    for name in rule_names():
        rule = get_rule(name)
        if rule.kind == "per_prompt" or name == "adpo":
            assert rule.truncation == "random", name
        else:
            assert rule.truncation == "score", name
