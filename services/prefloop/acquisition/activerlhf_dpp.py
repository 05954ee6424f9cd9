"""ActiveRLHF hybrid: a quality x diversity determinantal point process, solved greedily.

Source: B. Kuen, "Active learning for RLHF" (LMU bachelor's thesis, 2025), code
https://github.com/bkuen/active-rlhf (``algorithms/hybrid/selector.py``). Spec:
``seeds_001_004`` section 4.3 (Hybrid). Greedy MAP inference follows Chen, Zhang & Zhou,
"Fast Greedy MAP Inference for Determinantal Point Process", https://arxiv.org/abs/1709.05135.

Upstream, from ``oversampling_factor`` (10) x ``num_pairs`` random candidate pairs:

1. quality from the ensemble range u:
   q = min_q + (1 - min_q) ((u - u_min) / (u_max - u_min))^(1 / temp_q);
2. kernel K_ab = (1 - beta) exp(-g_z ||z_a - z_b||^2) + beta exp(-g_r ||r_a - r_b||^2) on
   z-scored fragment latents and reward sequences, with g from the median heuristic
   (1 / median pairwise squared distance);
3. L = diag(q) K diag(q); greedily add the candidate that maximises log det(L_S), accepting
   only positive determinants; if that stops early, fill with random candidates.

Quirk fixed (spec 4.3 step 6): upstream compares the *first* fragment of pair a with the
*second* fragment of pair b, so its K is not symmetric and K_aa != 1. Here every candidate has
one symmetric pair feature per kernel term, invariant to swapping the two responses:

* text term: f = [z_i + z_j, |z_i - z_j|], z = the responses' features z-scored over the real
  responses of the batch, then f z-scored across candidates;
* reward term: d = r_e(i) - r_e(j) over ensemble members e (``inputs.samples``), oriented so
  that sum_e d_e >= 0 (a sign flip of the whole vector, which keeps the members' relative
  disagreement that |d| per member would erase), z-scored across candidates.

Both terms are RBF kernels, so K is PSD with unit diagonal. Without ``inputs.features`` only
the reward term is used (reported in ``info``). The median is taken over at most 1024
candidates drawn from the generator. Greedy MAP is the incremental-Cholesky form of
Chen et al. (O(C k^2) time, O(C k) memory, kernel rows computed on demand): the marginal gain
of candidate c is log d_c^2, with d_c^2 its Schur complement given the chosen set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import pdist

from prefloop.acquisition.activerlhf_duo import SOURCE, oversampled_pool
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    CandidatePairs,
    check_per_response,
    resolve_budget,
    zscore_columns,
)
from prefloop.acquisition.registry import register

_MEDIAN_SUBSAMPLE = 1024
_MIN_GAIN = 1e-10


def quality_from_uncertainty(u: np.ndarray, min_q: float, temp_q: float) -> np.ndarray:
    """q = min_q + (1 - min_q) * normalised(u) ** (1 / temp_q), in [min_q, 1].

    Why: the hybrid's quality term (https://github.com/bkuen/active-rlhf); ``min_q`` keeps
    low-uncertainty pairs selectable for diversity, ``temp_q`` < 1 sharpens the preference.
    """
    span = float(u.max() - u.min()) if u.size else 0.0
    norm = (u - (u.min() if u.size else 0.0)) / (span + 1e-6)
    return np.asarray(min_q + (1.0 - min_q) * norm ** (1.0 / temp_q), dtype=np.float64)


def median_heuristic_gamma(x: np.ndarray, rng: np.random.Generator) -> float:
    """1 / median pairwise squared distance of the rows (over a seeded subsample if large)."""
    if x.shape[0] > _MEDIAN_SUBSAMPLE:
        x = x[np.sort(rng.choice(x.shape[0], _MEDIAN_SUBSAMPLE, replace=False))]
    d2 = pdist(x, "sqeuclidean")
    return 1.0 / (float(np.median(d2)) + 1e-12) if d2.size else 1.0


def symmetric_pair_features(
    rule: str, inputs: AcquisitionInput, samples: np.ndarray, cands: CandidatePairs
) -> tuple[np.ndarray | None, np.ndarray]:
    """(text feature or None, reward feature), both swap-invariant and z-scored across pairs."""
    si, sj = cands.gather(samples)
    d = si - sj
    d = d * np.where(d.sum(axis=1, keepdims=True) >= 0, 1.0, -1.0)
    reward_feat = zscore_columns(d)
    if inputs.features is None:
        return None, reward_feat
    feats = check_per_response(rule, "features", inputs.features, inputs, ndim=3)
    real = feats[np.asarray(inputs.mask, dtype=bool)]
    z = (feats - real.mean(axis=0)) / (real.std(axis=0) + 1e-8)
    zi, zj = cands.gather(z)
    return zscore_columns(np.concatenate([zi + zj, np.abs(zi - zj)], axis=1)), reward_feat


def greedy_dpp_map(
    quality: np.ndarray, kernel_row: Callable[[int], np.ndarray], k: int
) -> np.ndarray:
    """Greedy MAP of the DPP with L = diag(q) K diag(q), unit-diagonal K; up to k items.

    Why: exact DPP MAP is NP-hard; the greedy log-det maximiser is the standard approximation,
    and the incremental Cholesky update (https://arxiv.org/abs/1709.05135) makes each step
    O(C k) instead of a fresh determinant per candidate. Stops early when no candidate would
    keep det(L_S) positive (gain below 1e-10).

    Args:
        quality: (C,) q >= 0.
        kernel_row: j -> (C,) row K[j, :].
        k: maximum number of items.
    """
    c = quality.size
    gains = quality**2
    chol = np.zeros((min(k, c), c))
    selected: list[int] = []
    while len(selected) < min(k, c):
        j = int(np.argmax(gains))
        if not gains[j] > _MIN_GAIN:
            break
        t = len(selected)
        selected.append(j)
        row = quality[j] * kernel_row(j) * quality
        e = (row - np.einsum("t,tc->c", chol[:t, j], chol[:t])) / np.sqrt(gains[j])
        chol[t] = e
        gains = gains - e**2
        gains[selected] = -np.inf
    return np.asarray(selected, dtype=np.int64)


@register(
    "activerlhf_dpp",
    kind="batch",
    truncation="score",
    needs=("samples",),
    paper=SOURCE,
    summary="ActiveRLHF hybrid: greedy DPP on ensemble-range quality x pair-feature diversity",
)
def activerlhf_dpp(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    max_pairs: int | None = None,
    oversampling_factor: float = 10.0,
    beta: float = 0.5,
    min_q: float = 0.5,
    temp_q: float = 1.0,
) -> Selection:
    """Pick a batch that is both uncertain and diverse via a greedy quality-diversity DPP.

    Why: a DPP trades quality against redundancy in one objective, so two near-duplicate
    uncertain pairs are worth little more than one (https://github.com/bkuen/active-rlhf).

    Args:
        inputs: the batch; uses ``samples``, ``mask`` and, if present, ``features``.
        rng: draws the candidate pool, the median subsample and the random fill.
        max_pairs: pairs to return; None = one per prompt (P).
        oversampling_factor: candidate pool size as a multiple of ``max_pairs`` (10).
        beta: weight of the reward-difference kernel vs the text-feature kernel (0.5).
        min_q: lowest quality weight, in [0, 1] (0.5).
        temp_q: quality temperature > 0; < 1 sharpens, > 1 flattens (1.0).

    Returns:
        min(max_pairs, pool) distinct pairs with ``score`` = quality q; ``info`` counts how
        many came from the DPP and how many from the random fill.
    """
    if not 0.0 <= beta <= 1.0:
        raise AcquisitionError(f"activerlhf_dpp: beta must be in [0, 1], got {beta}")
    if not 0.0 <= min_q <= 1.0:
        raise AcquisitionError(f"activerlhf_dpp: min_q must be in [0, 1], got {min_q}")
    if not temp_q > 0:
        raise AcquisitionError(f"activerlhf_dpp: temp_q must be > 0, got {temp_q}")
    k = resolve_budget("activerlhf_dpp", max_pairs, inputs.shape[0])
    cands, theta, samples = oversampled_pool("activerlhf_dpp", inputs, rng, k, oversampling_factor)
    u = theta.max(axis=1) - theta.min(axis=1)
    q = quality_from_uncertainty(u, float(min_q), float(temp_q))
    info: dict[str, object] = {"candidates": cands.size}
    if cands.size <= k:
        return cands.to_selection(np.arange(cands.size), q, info=info | {"dpp_selected": 0})
    text_feat, reward_feat = symmetric_pair_features("activerlhf_dpp", inputs, samples, cands)
    g_r = median_heuristic_gamma(reward_feat, rng)
    w_r = float(beta) if text_feat is not None else 1.0
    g_z = median_heuristic_gamma(text_feat, rng) if text_feat is not None else 0.0

    reward_sq = np.einsum("cd,cd->c", reward_feat, reward_feat)
    text_sq = np.einsum("cd,cd->c", text_feat, text_feat) if text_feat is not None else None

    def kernel_row(j: int) -> np.ndarray:
        d2 = np.maximum(
            reward_sq + reward_sq[j] - 2.0 * np.einsum("cd,d->c", reward_feat, reward_feat[j]), 0.0
        )
        out = w_r * np.exp(-g_r * d2)
        if text_feat is not None and text_sq is not None:
            t2 = np.maximum(
                text_sq + text_sq[j] - 2.0 * np.einsum("cd,d->c", text_feat, text_feat[j]), 0.0
            )
            out += (1.0 - w_r) * np.exp(-g_z * t2)
        out[j] = 1.0  # exact unit diagonal despite rounding in the expansion
        return np.asarray(out, dtype=np.float64)

    chosen = greedy_dpp_map(q, kernel_row, k)
    n_dpp = chosen.size
    if n_dpp < k:
        rest = np.setdiff1d(np.arange(cands.size), chosen)
        fill = np.sort(rng.choice(rest, size=k - n_dpp, replace=False))
        chosen = np.concatenate([chosen, fill])
    info |= {
        "dpp_selected": int(n_dpp),
        "random_fill": int(k - n_dpp),
        "gamma_reward": g_r,
        "gamma_text": g_z,
        "text_kernel": text_feat is not None,
    }
    return cands.to_selection(chosen, q[chosen], info=info)
