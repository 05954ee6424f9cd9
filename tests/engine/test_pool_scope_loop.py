"""``acquisition.scope: pool`` in the embedded loop: each round ranks the not-yet-labelled
candidate prompts by the rule's per-prompt value and labels the best ``batchSize`` of them;
labelled prompts leave the pool, held-out prompts never enter it, a seed gives one dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _loop import run_loop

from prefloop.acquisition import AcquisitionInput, Selection
from prefloop.acquisition.pool_scope import prompt_values
from prefloop.engine.checkpoint import derive_seed
from prefloop.engine.round_engine import Roles, split_prompts
from prefloop.spec import load_activerun

pytestmark = pytest.mark.model


class Recorder:
    """Acquisition role that records what the rule saw and returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[AcquisitionInput, Selection]] = []

    def select(
        self, inputs: AcquisitionInput, *, method: str, params: dict[str, Any], seed: int
    ) -> Selection:
        sel = self.inner.select(inputs, method=method, params=params, seed=seed)
        self.calls.append((inputs, sel))
        return sel


def _pool_overrides(small: list[str], *extra: str) -> list[str]:
    return [
        *small,
        "spec.batchSize=4",
        "spec.acquisition.scope=pool",
        "spec.acquisition.candidatePoolSize=20",
        "spec.budget.maxAnnotations=12",
        *extra,
    ]


def test_pool_scope_labels_the_best_prompts_of_the_candidate_pool(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    overrides = _pool_overrides(small_overrides, "spec.acquisition.method=delta_ucb")
    recorder: list[Recorder] = []

    def wrap(roles: Roles) -> None:
        recorder.append(Recorder(roles.acquisition))
        roles.acquisition = recorder[0]

    result = run_loop(repo_root, tmp_path / "pool", overrides, wrap)
    run = load_activerun(repo_root / "examples" / "quickstart.yaml", overrides)
    from prefloop.data.readers import load_prompt_items

    items = load_prompt_items(repo_root / "data" / "alpacaeval" / "sample100.jsonl")[:40]
    pool, heldout = split_prompts(run, items)
    assert [it.prompt_id for it in result.heldout] == [it.prompt_id for it in heldout]

    rows = result.rows
    assert len(rows) == 12 and len({r["prompt_id"] for r in rows}) == 12  # one pair per prompt
    assert not {r["prompt_id"] for r in rows} & {it.prompt_id for it in heldout}
    assert [m["candidate_prompts"] for m in result.state.metrics] == [20, 20, 20]
    assert len(result.state.pool_done) == 12

    labelled: list[str] = []
    for r, (inputs, sel) in enumerate(recorder[0].calls):
        candidates = [it for it in pool if it.prompt_id not in labelled][:20]
        # round 0: an untrained model's values are its biases, so prompts are drawn uniformly
        kind = "uniform" if r == 0 else "pair_score"
        rng = np.random.default_rng(derive_seed(run.spec.seed, r, "pool"))
        values = prompt_values(kind, inputs, sel, rng)
        best = {candidates[i].prompt_id for i in np.argsort(-values, kind="stable")[:4]}
        this_round = {row["prompt_id"] for row in rows if row["round"] == r}
        assert this_round == best, f"round {r}"
        labelled.extend(it.prompt_id for it in candidates if it.prompt_id in this_round)
    first_batch = {it.prompt_id for it in pool[:4]}
    assert {row["prompt_id"] for row in rows if row["round"] == 0} != first_batch


def test_pool_scope_is_deterministic_per_seed_with_diversity(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    overrides = _pool_overrides(
        small_overrides, "spec.acquisition.method=drts", "spec.acquisition.diversity=clusters"
    )
    a = run_loop(repo_root, tmp_path / "a", overrides)
    b = run_loop(repo_root, tmp_path / "b", overrides)
    c = run_loop(repo_root, tmp_path / "c", [*overrides, "spec.seed=9"])
    assert a.rows == b.rows
    assert [r["pair_id"] for r in a.rows] != [r["pair_id"] for r in c.rows]
    assert len({r["prompt_id"] for r in a.rows}) == len(a.rows) == 12


def test_pool_scope_batch_rule_treats_the_pool_as_its_batch(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    """AE-Borda ranks pairs across its input: in pool scope it is asked for batchSize pairs
    out of the 20 candidates, and the prompts it labels leave the pool."""
    overrides = _pool_overrides(small_overrides, "spec.acquisition.method=ae_borda")
    result = run_loop(repo_root, tmp_path / "borda", overrides)
    assert [m["pairs_judged"] for m in result.state.metrics] == [4, 4, 4]
    assert len({r["prompt_id"] for r in result.rows}) == 12
