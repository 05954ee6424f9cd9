"""DeltaQwen: a stronger model's response against a weaker model's, labelled by identity.

The delta-learning hypothesis (Geng et al. 2025) says a preference pair teaches through the
*relative* quality gap, even when both responses are weak: pairing a larger model of a family
(chosen) with a smaller one (rejected) and training DPO on it improves the policy, with no judge
at all. ActiveUltraFeedback's DeltaQwen baseline (the strongest downstream baseline, the worst
for reward modelling) pairs a large with a small Qwen from its response pool.

Here the ranking is explicit: ``model_ranking`` lists model names strongest first. For every
prompt the rule pairs the response of the highest-ranked model present with that of the
lowest-ranked one and labels it itself (``pseudo_label = +1``: the first, stronger response
wins; the judge is not asked). Responses of models not in the ranking are never used. With
``pairs_per_prompt = k > 1`` the next pairs are the next-largest rank gaps (the stronger model
always first). ``score`` is the rank gap ``rank(second) - rank(first)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

from prefloop.acquisition._checks import checked_mask, checked_pairs_per_prompt, describe_rows
from prefloop.acquisition._pairs import pair_validity, top_k_pairs
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.registry import register

DELTA_LEARNING_PAPER = "https://arxiv.org/abs/2507.06187"
_MAX_ROWS_DESCRIBED = 3


def checked_ranking(model_ranking: Sequence[str], rule: str) -> dict[str, int]:
    """Model name -> rank (0 = strongest); the ranking must be non-empty, unique strings."""
    if isinstance(model_ranking, str):
        raise AcquisitionError(f"{rule}: model_ranking must be a list of model names, not a string")
    names = tuple(model_ranking)
    if not names:
        raise AcquisitionError(
            f"{rule}: model_ranking is empty; list the model names strongest first, e.g. "
            "['Qwen3-32B', 'Qwen3-0.6B']"
        )
    if not all(isinstance(name, str) and name for name in names):
        raise AcquisitionError(f"{rule}: model_ranking must hold non-empty strings, got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AcquisitionError(f"{rule}: model_ranking lists {duplicates} more than once")
    return {name: rank for rank, name in enumerate(names)}


def model_ranks(models: np.ndarray, mask: np.ndarray, rank_of: dict[str, int]) -> np.ndarray:
    """(P, N) rank of each response's model; -1 for padding and for unranked models.

    Why: turns names into numbers in one dictionary pass (no sort of the names), after which
    the rule is vectorised (https://arxiv.org/abs/2507.06187).
    """
    names = models[mask].tolist()
    try:
        ranks = np.fromiter(map(rank_of.get, names, repeat(-1)), np.int64, len(names))
    except TypeError:  # an unhashable entry: every name is looked up by its text below
        ranks = np.full(len(names), -1, dtype=np.int64)
    missed = np.flatnonzero(ranks < 0)  # names that are not str (compared by their text)
    ranks[missed] = [rank_of.get(str(names[i]), -1) for i in missed.tolist()]
    out = np.full(mask.shape, -1, dtype=np.int64)
    out[mask] = ranks
    return out


def _missing_models_message(
    rule: str, bad_rows: np.ndarray, names: np.ndarray, mask: np.ndarray, rank_of: dict[str, int]
) -> str:
    """Explain, for the first few bad prompt rows, which models are present and unranked."""
    parts = []
    for row in bad_rows[:_MAX_ROWS_DESCRIBED]:
        present = sorted({str(name) for name in names[row][mask[row]]})
        unranked = [name for name in present if name not in rank_of]
        parts.append(f"row {int(row)}: present {present}, not in model_ranking {unranked}")
    return (
        f"{rule}: {describe_rows(bad_rows)} have fewer than two distinct ranked models, so no "
        f"stronger-vs-weaker pair exists ({'; '.join(parts)}); add the missing models to "
        "model_ranking"
    )


@register(
    "delta_qwen",
    needs=("models",),
    paper=DELTA_LEARNING_PAPER,
    summary="DeltaQwen: stronger model vs weaker model by identity, labelled without the judge",
)
def delta_qwen(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    model_ranking: tuple[str, ...] = (),
    pairs_per_prompt: int = 1,
) -> Selection:
    """Pair the strongest-ranked model's response with the weakest-ranked one, stronger wins.

    Why: delta learning (Geng et al. 2025, https://arxiv.org/abs/2507.06187): a reliable relative
    quality gap from model identity alone gives strong DPO gains at zero judge cost. Raises
    ``AcquisitionError`` naming the prompt rows and unranked models when a prompt has fewer than
    two distinct ranked models. Deterministic: ``rng`` is not used.
    """
    rule = "delta_qwen"
    mask = checked_mask(inputs, rule)
    k = checked_pairs_per_prompt(pairs_per_prompt, rule)
    rank_of = checked_ranking(model_ranking, rule)
    if inputs.models is None:
        raise AcquisitionError(f"{rule}: needs model names on every response (inputs.models)")
    models = np.asarray(inputs.models, dtype=object)
    if models.shape != mask.shape:
        raise AcquisitionError(
            f"{rule}: inputs.models has shape {models.shape}, expected {mask.shape} like the mask"
        )

    ranks = model_ranks(models, mask, rank_of)
    ranked = ranks >= 0
    strongest = np.where(ranked, ranks, len(rank_of)).min(axis=1)
    weakest = np.where(ranked, ranks, -1).max(axis=1)
    bad_rows = np.flatnonzero(weakest <= strongest)
    if bad_rows.size:
        names = np.where(mask, models, "").astype(str)
        raise AcquisitionError(_missing_models_message(rule, bad_rows, names, mask, rank_of))

    if k == 1:  # the first flat argmax of rank_j - rank_i: first strongest vs first weakest
        first = np.argmax(ranked & (ranks == strongest[:, None]), axis=1)
        second = np.argmax(ranks == weakest[:, None], axis=1)
        gap = (weakest - strongest).astype(np.float64)
        return Selection.per_prompt(first, second, score=gap, pseudo_label=np.ones_like(first))
    stronger = ranked[:, :, None] & (ranks[:, :, None] < ranks[:, None, :])
    valid = pair_validity(mask) & stronger
    gap = (ranks[:, None, :] - ranks[:, :, None]).astype(np.float64)
    picked = top_k_pairs(gap, valid, k)
    return picked.to_selection(score=picked.gather(gap), pseudo_label=1)
