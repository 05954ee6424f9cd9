"""The engine's side of ``rewardModel.sourceModels``: record who beat whom, add the strengths.

The fit and the arithmetic are pure functions in ``reward/source_strength.py``; here the engine
keeps the (winner model, loser model) of every judge-labelled pair in its checkpointed state and,
each round, turns them into strengths added to the reward role's estimates before the rule runs.
Because the driver does this in every mode, embedded runs, the five services and the operator's
driver select the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from prefloop.data.records import PreferencePair, PromptItem
from prefloop.engine.checkpoint import RunState, derive_seed
from prefloop.engine.roles import RewardScores
from prefloop.engine.selection import models_array
from prefloop.reward.source_strength import fit_source_strengths, with_source_strengths
from prefloop.spec import ActiveRunSpec


def source_duels(pairs: Iterable[PreferencePair]) -> list[list[str]]:
    """[winner model, loser model] of the judge-labelled, untied pairs among ``pairs``.

    Why: only the judge's verdicts say anything about the models; self-labels (DeltaQwen's
    identity, ADPO's pseudo-labels) would feed the rule its own guesses back.
    """
    return [
        [p.chosen.model, p.rejected.model]
        for p in pairs
        if p.label_source == "judge" and not p.tie and p.chosen.model != p.rejected.model
    ]


def source_scored(
    spec: ActiveRunSpec,
    state: RunState,
    items: list[PromptItem],
    mask: np.ndarray,
    scores: RewardScores,
) -> RewardScores:
    """``scores`` plus the source models' strengths fitted on ``state.source_duels``."""
    cfg = spec.reward_model.source_models
    duels = state.source_duels
    strengths = fit_source_strengths(
        [d[0] for d in duels], [d[1] for d in duels], prior_precision=cfg.prior_precision
    )
    return with_source_strengths(
        scores,
        models_array(items, mask),
        mask,
        strengths,
        weight=cfg.weight,
        seed=derive_seed(spec.seed, state.round, "source-strengths"),
    )
