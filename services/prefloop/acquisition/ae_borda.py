"""AE-Borda-DPO (online): ask about the prompts whose best Borda score is least certain.

Paper: Mehta, Belakaria, ..., Neiswanger, "Sample Efficient Preference Alignment in LLMs via
Active Exploration", https://arxiv.org/abs/2312.00267 (code ``belakaria/active-llm-alignment``,
``selection_strategy=borda``). Spec: ``seeds_001_004`` section 1.4.

The theory algorithm estimates the contextual Borda function f(x, a) = E_{a'}[P(a > a' | x)],
keeps upper and lower confidence bounds on it, queries the context with the largest gap
max_a UCB_f - max_a LCB_f, plays a* = argmax_a UCB_f and an opponent a' drawn uniformly.
Upstream, for K policy samples a_k and K reference samples a'_m, with implicit rewards
r = mu - ref, stds s, kappa = 2 and the DPO beta,

    UCB[k, m] = sigmoid(beta ((r_k + kappa s_k) - (r'_m - kappa s'_m)))
    LCB[k, m] = sigmoid(beta ((r_k - kappa s_k) - (r'_m + kappa s'_m)))
    ucb_borda[k] = mean_m UCB[k, m],  lcb_borda[k] = mean_m LCB[k, m]
    alpha(x) = max_k ucb_borda - max_k lcb_borda,

keeps the top ``batch_size`` prompts and sends (a*, one uniformly random reference sample).

Adaptation to prefloop: a prompt's responses play both roles (there is no separate reference
sample set), so the Borda average for response k runs over the *other* real responses m != k
(a masked mean), and the opponent is a uniformly random other real response. r = mu - ref_logp
(ref = 0 without a policy in the loop). ``beta`` defaults to 1.0: the upstream 0.1 is DPO's
beta applied to *log-prob* rewards (sums over hundreds of tokens); prefloop's rewards are
reward-model scores on a unit-ish scale, where beta = 1 gives the Bradley-Terry probability.
Pass ``beta=0.1`` when ``mean`` are policy log-probs. With P prompts on offer, the top
``max_pairs`` prompts (default all of them) each yield one pair.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    CandidatePairs,
    check_per_response,
    descending_order,
    implicit_reward,
    require_two_per_prompt,
    resolve_budget,
)
from prefloop.acquisition.registry import register


def borda_bounds(
    reward: np.ndarray, std: np.ndarray, mask: np.ndarray, kappa: float, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """(P, N) upper and lower confidence bounds of every response's Borda score.

    Why: AE-Borda's acquisition is defined on these (https://arxiv.org/abs/2312.00267). The
    Borda score of k averages P(k beats m) over the other real responses m of its prompt;
    padded k get -inf so they never win a max.
    """
    hi = reward + kappa * std
    lo = reward - kappa * std
    ucb = expit(beta * (hi[:, :, None] - lo[:, None, :]))
    lcb = expit(beta * (lo[:, :, None] - hi[:, None, :]))
    n = mask.shape[1]
    opponents = mask[:, None, :] & mask[:, :, None] & ~np.eye(n, dtype=bool)[None]
    count = np.maximum(opponents.sum(axis=2), 1)
    ucb_borda = np.where(opponents, ucb, 0.0).sum(axis=2) / count
    lcb_borda = np.where(opponents, lcb, 0.0).sum(axis=2) / count
    ucb_borda = np.where(mask, ucb_borda, -np.inf)
    lcb_borda = np.where(mask, lcb_borda, -np.inf)
    return ucb_borda, lcb_borda


@register(
    "ae_borda",
    kind="batch",
    truncation="score",
    paper="https://arxiv.org/abs/2312.00267",
    summary="AE-Borda-DPO: prompts with the widest Borda UCB-LCB gap; argmax-UCB vs random",
)
def ae_borda(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    kappa: float = 2.0,
    beta: float = 1.0,
    max_pairs: int | None = None,
) -> Selection:
    """Pick the prompts whose best Borda score is most uncertain; pair a* with a random rival.

    Why: querying the context where the confidence band on max_a f(x, a) is widest is what
    gives AE-Borda its regret bound (https://arxiv.org/abs/2312.00267); the optimistic action
    against a uniform opponent estimates the Borda function without bias.

    Args:
        inputs: the batch; uses ``mean``, ``std``, ``mask`` and optionally ``ref_logp``.
        rng: draws the uniform opponent of every prompt (for all P, before selection).
        kappa: CI multiplier (``active_beta`` upstream, 2.0).
        beta: scale inside the sigmoid (1.0 for reward-model scores, 0.1 for log-probs).
        max_pairs: prompts (= pairs) to return; None = every prompt.
    """
    if kappa < 0:
        raise AcquisitionError(f"ae_borda: kappa must be >= 0, got {kappa}")
    if not beta > 0:
        raise AcquisitionError(f"ae_borda: beta must be > 0, got {beta}")
    n_prompts = inputs.shape[0]
    k = resolve_budget("ae_borda", max_pairs, n_prompts)
    mask = np.asarray(inputs.mask, dtype=bool)
    require_two_per_prompt("ae_borda", mask)
    reward = implicit_reward("ae_borda", inputs)
    std = check_per_response("ae_borda", "std", inputs.std, inputs, nonnegative=True)
    ucb_borda, lcb_borda = borda_bounds(reward, std, mask, float(kappa), float(beta))
    alpha = ucb_borda.max(axis=1) - lcb_borda.max(axis=1)
    best = np.argmax(ucb_borda, axis=1)
    rows = np.arange(n_prompts)
    keys = np.where(mask, rng.random(mask.shape), -1.0)
    keys[rows, best] = -1.0
    rival = np.argmax(keys, axis=1)
    pairs = CandidatePairs(rows.astype(np.int64), best.astype(np.int64), rival.astype(np.int64))
    idx = descending_order(alpha)[:k]
    return pairs.to_selection(
        idx, alpha[idx], info={"prompts": n_prompts, "mean_gap": float(alpha.mean())}
    )
