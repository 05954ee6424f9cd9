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


def skip_doubles(rng: np.random.Generator, count: int) -> None:
    """Leave ``rng`` in the state it would have after drawing ``count`` doubles.

    Why: the retries below stop drawing once every prompt has its answer, yet the generator
    must end where drawing all of them would leave it (a caller may keep using it). PCG64-type
    generators jump ahead in O(log count) (one 64-bit draw per double; the buffered 32-bit
    half-word is kept); any other generator draws and discards.
    """
    bit_generator = rng.bit_generator
    if isinstance(bit_generator, np.random.PCG64 | np.random.PCG64DXSM):
        before = bit_generator.state
        bit_generator.advance(count)
        after = bit_generator.state
        after["has_uint32"], after["uinteger"] = before["has_uint32"], before["uinteger"]
        bit_generator.state = after
        return
    chunk = 1 << 20
    while count > 0:
        rng.random(min(count, chunk))
        count -= chunk


def can_ever_win(
    mean: np.ndarray, std: np.ndarray, beta: float, mask: np.ndarray, sign: float
) -> np.ndarray:
    """(P, N): responses that can be the argmax of a draw ``sign * mu + beta * z * sigma``.

    Why: ``z`` lies in [-1, 1), so (rounding is monotone) every draw of response ``j`` lies in
    ``[sign mu_j - beta sigma_j, sign mu_j + beta sigma_j]`` as computed in floating point; a
    response whose highest draw is below another real response's lowest draw never wins, and
    a prompt whose allowed partners all never win can stop retrying at once.
    """
    offset = sign * mean
    spread = beta * std
    highest = offset + spread
    lowest = np.where(mask, offset - spread, -np.inf)
    rows = np.arange(mean.shape[0])
    top = np.argmax(lowest, axis=1)
    top_value = lowest[rows, top]
    lowest[rows, top] = -np.inf
    runner_up = lowest.max(axis=1)
    best_other = np.where(
        np.arange(mean.shape[1])[None, :] == top[:, None], runner_up[:, None], top_value[:, None]
    )
    return mask & ~(best_other > highest)


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

    The retries are the blocks of one ``(max_iterations, P, N)`` draw, drawn one block at a
    time and evaluated only for the prompts still waiting (those that can still accept, per
    ``can_ever_win``); once none waits the generator skips the remaining blocks. The picks and
    the generator's final state are those of drawing every block.
    """
    p, n = mean.shape
    fallback, _ = uniform_choice(rng, partners)
    second = fallback.copy()
    fell_back = np.ones(p, dtype=bool)
    waiting = np.flatnonzero(np.any(partners & can_ever_win(mean, std, beta, mask, sign), axis=1))
    offset = sign * mean
    for block in range(max_iterations):
        if waiting.size == 0:
            skip_doubles(rng, (max_iterations - block) * p * n)
            break
        samples = rng.uniform(-1.0, 1.0, size=(p, n))[waiting]  # z, scaled in place
        samples *= beta
        samples *= std[waiting]
        samples += offset[waiting]  # = sign * mu + beta * z * sigma, the same rounding
        samples[~mask[waiting]] = -np.inf
        winners = np.argmax(samples, axis=1)
        accepted = partners[waiting, winners]
        second[waiting[accepted]] = winners[accepted]
        fell_back[waiting[accepted]] = False
        waiting = waiting[~accepted]
    return second, fell_back


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
