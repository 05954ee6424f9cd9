"""``rewardModel.sourceModels`` in the embedded loop: the judged pairs' models are recorded in
the checkpointed state, and each round the rule sees the head's estimates plus the strengths
fitted on the pairs judged before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _loop import run_loop

from prefloop.acquisition import AcquisitionInput
from prefloop.engine.checkpoint import derive_seed
from prefloop.engine.roles import RewardScores
from prefloop.engine.round_engine import Roles
from prefloop.reward.source_strength import fit_source_strengths, with_source_strengths

pytestmark = pytest.mark.model


class Spy:
    """Wraps a role, recording what one method returned or was given."""

    def __init__(self, inner: Any, log: list[Any]) -> None:
        self.inner, self.log = inner, log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ScoreSpy(Spy):
    def score(self, items: list[Any], mask: np.ndarray) -> RewardScores:
        out = self.inner.score(items, mask)
        self.log.append((items, mask, out))
        return out


class SelectSpy(Spy):
    def select(self, inputs: AcquisitionInput, **kwargs: Any) -> Any:
        self.log.append(inputs)
        return self.inner.select(inputs, **kwargs)


def _spies(scored: list[Any], selected: list[AcquisitionInput]) -> Callable[[Roles], None]:
    """A role wrapper recording the head's scores and what the rule was given."""

    def wrap(roles: Roles) -> None:
        roles.reward = ScoreSpy(roles.reward, scored)  # type: ignore[assignment]
        roles.acquisition = SelectSpy(roles.acquisition, selected)  # type: ignore[assignment]

    return wrap


def test_rule_sees_head_estimates_plus_strengths_of_earlier_judged_pairs(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    scored: list[Any] = []
    selected: list[AcquisitionInput] = []
    wrap = _spies(scored, selected)
    overrides = [
        *small_overrides,
        "spec.rewardModel.sourceModels.enabled=true",
        "spec.rewardModel.sourceModels.weight=2.0",
        "spec.budget.maxAnnotations=24",
    ]
    result = run_loop(repo_root, tmp_path / "run", overrides, wrap)
    rows = result.rows
    assert len(scored) == len(selected) == 3
    duels = [[r["chosen_model"], r["rejected_model"]] for r in rows if not r["tie"]]
    assert result.state.source_duels == duels and len(duels) >= 20
    per_round = [
        [[r["chosen_model"], r["rejected_model"]] for r in rows if r["round"] == k and not r["tie"]]
        for k in range(3)
    ]
    seen: list[list[str]] = []
    for r, ((items, mask, head), inputs) in enumerate(zip(scored, selected, strict=True)):
        fit = fit_source_strengths([d[0] for d in seen], [d[1] for d in seen])
        models = np.array([[x.model for x in it.responses] for it in items], dtype=object)
        want = with_source_strengths(
            head, models, mask, fit, weight=2.0, seed=derive_seed(4, r, "source-strengths")
        )
        rows_sel = np.flatnonzero(mask.sum(axis=1) >= 2)
        np.testing.assert_allclose(inputs.mean, want.mean[rows_sel])
        np.testing.assert_allclose(inputs.std, want.std[rows_sel])
        if r:  # strengths learned: the rule no longer sees the head alone
            assert np.abs(inputs.mean - head.mean[rows_sel]).max() > 0.1
        seen += per_round[r]
    state = json.loads(
        next((tmp_path / "run").rglob("checkpoints/round-0003/state.json")).read_text()
    )
    assert state["source_duels"] == duels  # a resumed run refits the same strengths


def test_disabled_source_models_leave_the_rule_inputs_alone(
    repo_root: Path, tmp_path: Path, small_overrides: list[str]
) -> None:
    scored: list[Any] = []
    selected: list[AcquisitionInput] = []
    wrap = _spies(scored, selected)
    off = ["spec.rewardModel.sourceModels.enabled=false", "spec.budget.maxAnnotations=16"]
    run_loop(repo_root, tmp_path / "run", [*small_overrides, *off], wrap)
    for (_, mask, head), inputs in zip(scored, selected, strict=True):
        rows_sel = np.flatnonzero(mask.sum(axis=1) >= 2)
        np.testing.assert_array_equal(inputs.mean, head.mean[rows_sel])
