"""MaxMinLCB: a Stackelberg game between a leader and a follower response (Pásztor et al. 2024).

For every prompt, with pairwise lower confidence bounds on the reward difference

    LCB[i, j] = (mu_i - mu_j) - beta * (sigma_i + sigma_j),   i != j

(the stds are summed, as in ActiveUltraFeedback's code), the leader is the response with the
best worst case, ``i* = argmax_i min_j LCB[i, j]``, and the follower is its worst-case opponent
``j* = argmin_j LCB[i*, j]``. Both argmax and argmin break near-ties (within ``argmax_tol``)
uniformly at random with the passed ``rng``; ``argmax_tol = 0`` breaks exact ties only (the
reference's strict ``< tol`` would leave no candidate at all and, here, pair a response with
itself; issue 7, item 4). This favours the probably-best response against its
closest rival: small-gap, informative pairs.

Optional candidate set (``use_candidate_set``): responses that could still be the best,
``UCB[i, j] = (mu_i - mu_j) + beta (sigma_i + sigma_j) > -decision_buffer`` for every opponent,
and the game is played among them. Fix of the reference bug (spec 8, item 4): when only one
candidate remains the reference returned ``(c, c)``; here ``c`` leads and the follower is chosen
from the full set. With no candidate at all (possible with zero stds and tied means) the full
set is used.

With ``pairs_per_prompt = k > 1`` the game is replayed ``k`` times, each round with the pairs
taken before removed from the payoff matrix (if the candidate game runs out of pairs, the round
falls back to the full set). ``score`` is the chosen pair's ``LCB[i*, j*]``.
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition._checks import (
    checked_confidence_inputs,
    checked_nonnegative,
)
from prefloop.acquisition._pairs import (
    PairLedger,
    PickedPairs,
    RoundResults,
    fill_illegal_pairs,
    pair_validity,
)
from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.registry import register

MAXMINLCB_PAPER = "https://arxiv.org/abs/2406.16745"


def candidate_pairs(
    mask: np.ndarray, valid: np.ndarray, ucb: np.ndarray, decision_buffer: float
) -> np.ndarray:
    """(P, N, N) pairs allowed in the candidate game (leader rows, follower columns).

    Why: MaxMinLCB's pruning of responses that are confidently not the best
    (https://arxiv.org/abs/2406.16745); with one candidate it leads against the full set.
    """
    beats_all = np.all(~valid | (ucb > -decision_buffer), axis=2)
    candidate = mask & beats_all
    n_candidates = candidate.sum(axis=1, keepdims=True)
    leaders = np.where(n_candidates >= 1, candidate, mask)
    followers = np.where(n_candidates >= 2, candidate, mask)
    return valid & leaders[:, :, None] & followers[:, None, :]


def random_tie_break(
    rng: np.random.Generator,
    values: np.ndarray,
    allowed: np.ndarray,
    target: np.ndarray,
    tol: float,
) -> np.ndarray:
    """Uniform pick among allowed entries with ``|values - target| < tol`` along the last axis.

    Why: MaxMinLCB breaks near-ties at random (https://arxiv.org/abs/2406.16745) so that equal
    responses are not always resolved towards the lowest index. Entries exactly equal to the
    target always belong to the tie set, so ``tol = 0`` means "exact ties only" instead of an
    empty set (which made every row fall back to index 0 and paired a response with itself).
    Disallowed entries (which hold infinities) are replaced by the target, and rows without any
    allowed entry get a zero target, so no ``inf - inf`` occurs.
    """
    target = np.where(np.isfinite(target), target, 0.0)
    safe = np.where(allowed, values, target[..., None])
    gap = np.abs(safe - target[..., None])
    ties = allowed & ((gap < tol) | (gap == 0.0))
    keys = rng.random(values.shape)
    return np.argmax(np.where(ties, keys, -1.0), axis=-1)


def opponent_major_lcb(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    """(P, N, N) with ``[p, j, i] = LCB[p, i, j] = (mu_i - mu_j) - beta (sigma_i + sigma_j)``.

    Why: MaxMinLCB's payoff matrix (https://arxiv.org/abs/2406.16745) stored opponent-major, so
    the leaders' worst cases are a minimum over axis 1 (an elementwise minimum of N rows, fast)
    rather than over the short last axis; built in place with one temporary, with the same
    rounding as ``diff - beta * spread``.
    """
    lcb = mean[:, None, :] - mean[:, :, None]
    spread = std[:, :, None] + std[:, None, :]
    if beta != 1.0:
        spread *= beta
    lcb -= spread
    return lcb


def single_game(
    rng: np.random.Generator, lcb_t: np.ndarray, mask: np.ndarray, tol: float
) -> tuple[PickedPairs, np.ndarray]:
    """One leader/follower game per prompt on the full set of legal pairs.

    Why: the default MaxMinLCB call (one pair, no candidate set) needs neither the pair ledger
    nor a masked copy of the payoff: illegal entries of ``lcb_t`` (``opponent_major_lcb``:
    diagonal, padding) are set to +inf in place, and the tie breaks draw exactly what the
    general loop draws, so the picks are identical. Returns the picks and their ``LCB`` values.
    """
    p, n = mask.shape
    rows = np.arange(p)
    opponent = np.arange(n)
    worst = fill_illegal_pairs(lcb_t, mask, np.inf).min(axis=1)
    has_pair = np.count_nonzero(mask, axis=1) >= 2
    can_lead = mask & has_pair[:, None]
    best_worst = np.where(can_lead, worst, -np.inf).max(axis=1)
    leader = random_tie_break(rng, worst, can_lead, best_worst, tol)
    opponents = mask & (opponent[None, :] != leader[:, None])
    payoff = lcb_t[rows, :, leader]
    follower = random_tie_break(rng, payoff, opponents, worst[rows, leader], tol)
    active = np.flatnonzero(has_pair)
    picked = PickedPairs(active.astype(np.int64), leader[active], follower[active])
    return picked, np.asarray(payoff[active, follower[active]], dtype=np.float64)


@register(
    "maxmin_lcb",
    paper=MAXMINLCB_PAPER,
    summary="MaxMinLCB: leader with the best worst-case LCB vs its worst-case opponent",
)
def maxmin_lcb(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
    argmax_tol: float = 1e-4,
    decision_buffer: float = 0.0,
    use_candidate_set: bool = False,
    pairs_per_prompt: int = 1,
) -> Selection:
    """Play MaxMinLCB's leader/follower game per prompt, vectorised over prompts.

    Why: the Stackelberg acquisition of Pásztor, Kassraie & Krause 2024
    (https://arxiv.org/abs/2406.16745), with regret guarantees for preference feedback and
    benchmarked by ActiveUltraFeedback (https://arxiv.org/abs/2603.09692). Parameters as in the
    spec (section 1.6): ``beta``, ``argmax_tol`` (tie band), ``decision_buffer`` and
    ``use_candidate_set`` (off in every shipped configuration).
    """
    rule = "maxmin_lcb"
    mask, mean, std, k, beta = checked_confidence_inputs(inputs, rule, beta, pairs_per_prompt)
    tol = checked_nonnegative(argmax_tol, rule, "argmax_tol")
    buffer = checked_nonnegative(decision_buffer, rule, "decision_buffer")
    if k == 1 and not use_candidate_set:
        picked, score = single_game(rng, opponent_major_lcb(mean, std, beta), mask, tol)
        return picked.to_selection(score=score)

    diff = mean[:, :, None] - mean[:, None, :]
    spread = std[:, :, None] + std[:, None, :]
    lcb = diff - beta * spread
    valid = pair_validity(mask)
    game = (
        candidate_pairs(mask, valid, diff + beta * spread, buffer) if use_candidate_set else valid
    )

    rows = np.arange(mask.shape[0])
    ledger = PairLedger(mask)
    results = RoundResults()
    for _ in range(k):
        open_pairs = ledger.open_pairs()
        active = np.any(open_pairs, axis=(1, 2))
        if not active.any():
            break
        allowed = game & open_pairs
        has_game = np.any(allowed, axis=(1, 2))
        allowed = np.where(has_game[:, None, None], allowed, open_pairs)

        payoff = np.where(allowed, lcb, np.inf)
        worst = payoff.min(axis=2)  # (P, N), +inf for rows without opponents
        can_lead = np.any(allowed, axis=2)
        best_worst = np.where(can_lead, worst, -np.inf).max(axis=1)
        leader = random_tie_break(rng, worst, can_lead, best_worst, tol)
        follower = random_tie_break(
            rng, payoff[rows, leader], allowed[rows, leader], worst[rows, leader], tol
        )
        ledger.add(active, leader, follower)
        results.append(active, leader, follower, lcb[rows, leader, follower])
    picked, score = results.stack()
    return picked.to_selection(score=score)
