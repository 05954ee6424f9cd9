"""Double Thompson Sampling (DTS) and Double Reverse Thompson Sampling (DRTS).

Both draw the first response as the argmax of a posterior sample ``mu + beta * z * sigma`` with
``z ~ Uniform(-1, 1)`` per response (ActiveUltraFeedback's sampler, spec section 1.2). They
differ in the second response:

* DTS (Wu & Liu 2016) draws a fresh sample of the same kind and retries until its argmax differs
  from the first: two "probably best" responses, a dueling-bandit exploration pair.
* DRTS (ActiveUltraFeedback, the paper's new method) draws ``-mu + beta * z' * sigma``, i.e. the
  argmin of a fresh posterior sample: an optimistic best against a probably-worst, which gives
  large predicted quality gaps (delta learning) while still exploring.

Retries are capped at ``max_iterations`` (30 in the paper's configs), after which the second
response is uniform among the remaining ones. Everything is vectorised over prompts; with
``pairs_per_prompt = k > 1`` the draw is repeated ``k`` times, each round excluding pairs taken
in earlier rounds (the first response is then drawn among responses that still have an untaken
partner). There is no pair score for a Thompson draw, so ``Selection.score`` is NaN;
``Selection.info["uniform_fallbacks"]`` counts the pairs whose second pick ran out of retries.
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition._checks import (
    checked_confidence_inputs,
    checked_count,
)
from prefloop.acquisition._sampling import retry_partner, thompson_rounds
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.registry import register

DTS_PAPER = "https://arxiv.org/abs/1604.07101"
AUF_PAPER = "https://arxiv.org/abs/2603.09692"


def double_thompson(
    rule: str,
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float,
    max_iterations: int,
    pairs_per_prompt: int,
    second_sign: float,
) -> Selection:
    """Shared body of DTS (``second_sign = +1``) and DRTS (``second_sign = -1``)."""
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)
    tries = checked_count(max_iterations, rule, "max_iterations")

    fallbacks = 0

    def retried_second(
        first: np.ndarray, partners: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        nonlocal fallbacks
        second, fell_back = retry_partner(
            rng, mean, std, beta, mask, partners, tries, sign=second_sign
        )
        fallbacks += int(np.count_nonzero(fell_back & active))
        return second, np.full(len(first), np.nan)

    picked, _ = thompson_rounds(rng, mask, mean, std, beta, k, retried_second)
    return picked.to_selection(info={"uniform_fallbacks": fallbacks})


@register(
    "dts",
    paper=DTS_PAPER,
    summary="Double Thompson sampling: two argmaxes of Uniform(-1,1)-scaled posterior draws",
)
def dts(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    max_iterations: int = 30,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Double Thompson Sampling: first and second are argmaxes of independent posterior draws.

    Why: a dueling-bandit rule (Wu & Liu 2016, https://arxiv.org/abs/1604.07101) that spends
    comparisons on responses that could plausibly be the best, as ActiveUltraFeedback
    (https://arxiv.org/abs/2603.09692) runs it. ``beta`` scales the sampled spread,
    ``max_iterations`` caps the retries for a second pick different from the first.
    """
    return double_thompson(
        "dts",
        inputs,
        rng,
        beta=beta,
        max_iterations=max_iterations,
        pairs_per_prompt=pairs_per_prompt,
        second_sign=1.0,
    )


@register(
    "drts",
    paper=AUF_PAPER,
    summary="Double reverse Thompson sampling: optimistic best vs argmin of a fresh draw",
)
def drts(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    max_iterations: int = 30,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Double Reverse Thompson Sampling: argmax of one posterior draw vs argmin of another.

    Why: ActiveUltraFeedback's new rule (https://arxiv.org/abs/2603.09692) aims at pairs with a
    large predicted quality gap (what DPO learns most from, per the delta-learning hypothesis)
    while the posterior noise keeps exploring. Same ``beta`` / ``max_iterations`` as DTS.
    """
    return double_thompson(
        "drts",
        inputs,
        rng,
        beta=beta,
        max_iterations=max_iterations,
        pairs_per_prompt=pairs_per_prompt,
        second_sign=-1.0,
    )
