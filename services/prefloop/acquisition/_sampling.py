"""Vectorised Thompson-style draws for DTS, DRTS and InfoGain.

ActiveUltraFeedback's Thompson sample is not Gaussian: every response gets an independent
``z ~ Uniform(-1, 1)`` and the sampled reward is ``mu + beta * z * sigma``, so the draw stays inside
the model's ``beta``-confidence interval (spec section 1.2, quirk 8.3). The reference code loops
over prompts and re-samples the second arm until it differs from the first (at most
``max_iterations`` times, then uniform). Here all retries for all prompts are drawn at once as a
(tries, P, N) array, the first accepted retry per prompt is kept, and the prompts where every
retry failed fall back to a uniform pick: the same distribution, no Python loop over prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prefloop.acquisition._pairs import (
    PairLedger,
    PickedPairs,
    RoundResults,
    uniform_choice,
)

SecondPick = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(first, partners, active) -> (second, score)``: a rule's second response per prompt."""


def thompson_pick(
    rng: np.random.Generator,
    mean: np.ndarray,
    std: np.ndarray,
    beta: float,
    eligible: np.ndarray,
    sign: float = 1.0,
) -> np.ndarray:
    """Argmax over eligible responses of one posterior draw ``sign * mu + beta * z * sigma``.

    ``sign = -1`` gives the reverse sample of DRTS (the argmin of a fresh posterior draw, since
    ``z`` is symmetric). Rows with nothing eligible return index 0; callers mask them out.
    """
    z = rng.uniform(-1.0, 1.0, size=mean.shape)
    sample = sign * mean + beta * z * std
    return np.argmax(np.where(eligible, sample, -np.inf), axis=-1)


def retry_partner(
    rng: np.random.Generator,
    mean: np.ndarray,
    std: np.ndarray,
    beta: float,
    mask: np.ndarray,
    partners: np.ndarray,
    max_iterations: int,
    sign: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """DTS's second pick: re-sample until the winner is an allowed partner, then go uniform.

    Each retry is a fresh posterior draw over all real responses (``mask``); a retry is
    accepted when its argmax is in ``partners`` (P, N) (not the first arm, not already paired
    with it). Returns ``(second, fell_back)``: the first accepted retry per prompt, or a uniform
    pick among ``partners`` where all ``max_iterations`` retries failed.
    """
    p, n = mean.shape
    rows = np.arange(p)
    fallback, _ = uniform_choice(rng, partners)
    if max_iterations == 0:
        return fallback, np.ones(p, dtype=bool)
    samples = rng.uniform(-1.0, 1.0, size=(max_iterations, p, n))  # z, scaled in place
    samples *= beta
    samples *= std[None]
    samples += (sign * mean)[None]  # = sign * mu + beta * z * sigma, the same rounding
    if not mask.all():
        samples[:, ~mask] = -np.inf
    winners = np.argmax(samples, axis=-1)  # (tries, P)
    accepted = partners[rows[None, :], winners]
    first_ok = np.argmax(accepted, axis=0)
    any_ok = accepted.any(axis=0)
    second = np.where(any_ok, winners[first_ok, rows], fallback)
    return second, ~any_ok


def thompson_rounds(
    rng: np.random.Generator,
    mask: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    beta: float,
    rounds: int,
    second_pick: SecondPick,
) -> tuple[PickedPairs, np.ndarray]:
    """Up to ``rounds`` pairs per prompt: a Thompson-sampled first response, then ``second_pick``.

    Why: DTS, DRTS and InfoGain (https://arxiv.org/abs/2603.09692) share the first draw and the
    bookkeeping that keeps later rounds off pairs already taken; only the second pick differs.
    Each round the first response is drawn among responses with an untaken partner;
    ``second_pick`` gets it, the (P, N) untaken ``partners`` of it and the (P,) ``active`` rows.
    Returns the stacked picks and their scores.
    """
    ledger = PairLedger(mask)
    results = RoundResults()
    for round_index in range(rounds):
        has_partner = ledger.has_partner()
        active = np.any(has_partner, axis=1)
        if not active.any():
            break
        first = thompson_pick(rng, mean, std, beta, has_partner)
        second, score = second_pick(first, ledger.partners(first), active)
        results.append(active, first, second, score)
        if round_index + 1 < rounds:
            ledger.add(active, first, second)
    return results.stack()
