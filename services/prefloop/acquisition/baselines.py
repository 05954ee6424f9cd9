"""The static baselines of ActiveUltraFeedback: Random, UltraFeedback best-of-4 and MaxMin.

These are the rules the paper compares its active methods against (spec section 1.1). They
ignore the reward model's uncertainty; UltraFeedback and MaxMin rank responses either by the
stored judge score (``by="judge"``, how the paper built its baseline data sets offline) or by the
reward model's mean (``by="reward"``, the loop's in-loop variant). In both cases the judge still
labels the pair (``pseudo_label`` 0); the first response is the better-ranked one, which is
also what the oracle keeps as chosen on a tie.

Fixed relative to the reference: the in-loop Random drew two indices independently and could
pair a response with itself (spec 8, item 4); here the two are always distinct. UltraFeedback
needed ``N >= 4``; here prompts with fewer responses use all of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from prefloop.acquisition._checks import (
    checked_choice,
    checked_mask,
    checked_pairs_per_prompt,
    checked_values,
)
from prefloop.acquisition._pairs import (
    PairLedger,
    RoundResults,
    masked_pair_argmax,
    random_distinct_pairs,
    top_k_difference_pairs,
    uniform_choice,
)
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.registry import register

AUF_PAPER = "https://arxiv.org/abs/2603.09692"
ULTRAFEEDBACK_PAPER = "https://arxiv.org/abs/2310.01377"
RankBy = Literal["judge", "reward"]
_SUBSET_RETRIES = 30


def ranking_scores(inputs: AcquisitionInput, mask: np.ndarray, by: str, rule: str) -> np.ndarray:
    """The (P, N) per-response quality a baseline ranks by: judge score or reward-model mean."""
    by = checked_choice(by, rule, "by", ("judge", "reward"))
    if by == "reward":
        return checked_values(inputs.mean, mask, rule, "mean")
    if inputs.judge_scores is None:
        raise AcquisitionError(
            f"{rule}: by='judge' needs stored judge scores (responses[].score in the data); "
            "use by='reward' to rank by the reward model's mean instead"
        )
    return checked_values(inputs.judge_scores, mask, rule, "judge_scores")


@register(
    "random",
    paper=AUF_PAPER,
    summary="Random: two distinct responses uniformly at random",
)
def random(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Two distinct real responses uniformly at random (``k`` distinct uniform pairs for ``k > 1``).

    Why: the passive baseline every active rule must beat (ActiveUltraFeedback,
    https://arxiv.org/abs/2603.09692). Each pair's orientation is random too. ``score`` is NaN.
    """
    rule = "random"
    mask = checked_mask(inputs, rule)
    k = checked_pairs_per_prompt(pairs_per_prompt, rule)
    return random_distinct_pairs(rng, mask, k).to_selection()


@register(
    "maxmin",
    paper=AUF_PAPER,
    summary="MaxMin: best vs worst response by judge score (or reward-model mean)",
)
def maxmin(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    by: RankBy = "judge",
    pairs_per_prompt: int = 1,
) -> Selection:
    """Pair the best response with the worst one, by judge score or by reward-model mean.

    Why: the largest-quality-gap baseline of ActiveUltraFeedback
    (https://arxiv.org/abs/2603.09692), strong for DPO because of the delta-learning effect.
    For ``k > 1`` the next pairs are the next-largest score gaps ``s_i - s_j`` (distinct
    unordered pairs). Ties go to the lower index. ``score`` is the gap ``s_first - s_second``.
    Deterministic: ``rng`` is not used.
    """
    rule = "maxmin"
    mask = checked_mask(inputs, rule)
    k = checked_pairs_per_prompt(pairs_per_prompt, rule)
    scores = ranking_scores(inputs, mask, by, rule)
    picked, gap = top_k_difference_pairs(scores, scores, mask, k)
    return picked.to_selection(score=gap)


def _best_of_subset_round(
    rng: np.random.Generator,
    scores: np.ndarray,
    mask: np.ndarray,
    open_pairs: np.ndarray | None,
    subset_size: np.ndarray,
    tries: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One UltraFeedback round: best of a random subset vs a uniform other member of it.

    A try draws a uniform subset of ``subset_size[p]`` real responses per prompt; its best
    member by score (ties: the one drawn first) among those with an untaken partner inside the
    subset is the first response (``open_pairs`` None: nothing is taken yet). Returns
    ``(best, subset, accepted)`` of the first accepted try.
    """
    p, n = mask.shape
    rows = np.arange(p)
    keys = np.where(mask[None], rng.random((tries, p, n)), -1.0)
    kth = np.clip(subset_size - 1, 0, n - 1)
    sorted_keys = -np.sort(-keys, axis=-1)
    threshold = np.take_along_axis(
        sorted_keys, np.broadcast_to(kth[None, :, None], (tries, p, 1)), axis=-1
    )
    in_subset = mask[None] & (keys >= threshold)
    if open_pairs is None:  # nothing taken yet: a member's partners are the other members
        partner_counts = np.count_nonzero(in_subset, axis=-1)[..., None] - 1
    else:
        partner_counts = np.matmul(
            open_pairs.astype(np.float32)[None], in_subset.astype(np.float32)[..., None]
        )[..., 0]
    eligible = in_subset & (partner_counts > 0)
    top = np.where(eligible, scores[None], -np.inf).max(axis=-1, keepdims=True)
    tied = eligible & (scores[None] == top)
    best = np.argmax(np.where(tied, keys, -2.0), axis=-1)  # (tries, P)
    accepted = eligible.any(axis=-1)
    first_ok = np.argmax(accepted, axis=0)
    return best[first_ok, rows], in_subset[first_ok, rows], accepted.any(axis=0)


@register(
    "ultrafeedback",
    paper=ULTRAFEEDBACK_PAPER,
    summary="UltraFeedback: best of 4 random responses vs a random other of the 4",
)
def ultrafeedback(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    by: RankBy = "judge",
    subset_size: int = 4,
    pairs_per_prompt: int = 1,
) -> Selection:
    """UltraFeedback binarisation: best of ``subset_size`` random responses vs a random other.

    Why: the construction of the widely used UltraFeedback-binarized preference data (Cui et al.
    2023, https://arxiv.org/abs/2310.01377), a static baseline in ActiveUltraFeedback. Prompts
    with fewer than ``subset_size`` responses use all of them. ``by="judge"`` ranks by stored
    judge score (the paper's static baseline), ``by="reward"`` by the reward model's mean (the
    in-loop variant). For ``k > 1`` the draw is repeated excluding pairs taken before (a subset
    with no untaken pair is redrawn up to 30 times, then an untaken pair is drawn uniformly and
    oriented best-first). ``score`` is ``s_first - s_second``; the judge labels the pair.
    """
    rule = "ultrafeedback"
    mask = checked_mask(inputs, rule)
    k = checked_pairs_per_prompt(pairs_per_prompt, rule)
    scores = ranking_scores(inputs, mask, by, rule)
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise AcquisitionError(f"{rule}: subset_size must be an integer >= 2, got {subset_size!r}")
    size = np.minimum(subset_size, mask.sum(axis=1))

    rows = np.arange(mask.shape[0])
    ledger = PairLedger(mask)
    results = RoundResults()
    fallbacks = 0
    for round_index in range(k):
        active = np.any(ledger.has_partner(), axis=1)
        if not active.any():
            break
        tries = 1 if round_index == 0 else _SUBSET_RETRIES  # round 0: every subset works
        open_pairs = None if round_index == 0 else ledger.open_pairs()
        best, subset, ok = _best_of_subset_round(rng, scores, mask, open_pairs, size, tries)
        other, _ = uniform_choice(rng, ledger.partners(best) & subset)
        first, second = best, other
        if (active & ~ok).any():  # no untaken pair in any drawn subset: uniform untaken pair
            untaken = ledger.open_pairs()
            any_a, any_b, _ = masked_pair_argmax(rng.random(untaken.shape), untaken)
            swap = scores[rows, any_b] > scores[rows, any_a]
            first = np.where(ok, best, np.where(swap, any_b, any_a))
            second = np.where(ok, other, np.where(swap, any_a, any_b))
        fallbacks += int(np.count_nonzero(active & ~ok))
        if round_index + 1 < k:
            ledger.add(active, first, second)
        results.append(active, first, second, scores[rows, first] - scores[rows, second])
    picked, gap = results.stack()
    return picked.to_selection(score=gap, info={"uniform_fallbacks": fallbacks})
