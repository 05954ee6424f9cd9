"""ActiveRLHF DUO: uncertainty first, then diversity by k-means on pair features.

Source: B. Kuen, "Active learning for RLHF" (LMU bachelor's thesis, 2025), code
https://github.com/bkuen/active-rlhf (``algorithms/duo/selector.py``,
``queries/uncertainty.py``). Spec: ``seeds_001_004`` sections 4.2-4.3. DUO gave the thesis's
best gain-to-overhead trade-off.

Upstream, for ``num_pairs`` queries:

1. draw ``oversampling_factor`` (10) x ``num_pairs`` random candidate pairs;
2. per pair, theta_e = P_e(first > second) for every ensemble member e, and the uncertainty is
   the ensemble range u = max_e theta_e - min_e theta_e; an optional *consensual filter*
   keeps only pairs the members disagree on (min_e theta_e <= 0.5 <= max_e theta_e);
3. keep the top half by u;
4. z-score a pair feature (the per-timestep reward difference) across the kept pairs;
5. k-means with k = ``num_pairs`` (n_init 10, 300 iterations) and take, in every cluster, the
   member closest to the centroid.

Adaptation to prefloop: candidates are distinct random same-prompt pairs, uniform over all
pairs of the batch (all of them if fewer exist); theta_e = sigmoid(r_e(i) - r_e(j)) from the
per-member rewards ``inputs.samples``; the pair feature is the text-feature difference
``features_i - features_j`` when features are given, else the per-member reward difference
r_e(i) - r_e(j). When the pool is small (e.g. offline chosen/rejected pairs, one per prompt),
"top half" would leave fewer than ``max_pairs`` candidates, so max(half, min(max_pairs, pool))
are kept; if at most ``max_pairs`` remain they are all returned without clustering. k-means is
seeded from the run's generator (k-means++); if clusters end up empty (fewer distinct rows
than k), the missing representatives are the remaining highest-u pairs.
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    CandidatePairs,
    check_per_response,
    descending_order,
    member_win_probs,
    resolve_budget,
    sample_candidate_pairs,
    zscore_columns,
)
from prefloop.acquisition.kmeans import kmeans, nearest_member_per_cluster
from prefloop.acquisition.registry import register

SOURCE = "https://github.com/bkuen/active-rlhf"


def oversampled_pool(
    rule: str,
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    k: int,
    oversampling_factor: float,
) -> tuple[CandidatePairs, np.ndarray, np.ndarray]:
    """ActiveRLHF's candidate pool: random pairs, their member probabilities and samples.

    Why: both DUO and the hybrid DPP start from ``oversampling_factor`` x k random pairs scored
    by the ensemble (https://github.com/bkuen/active-rlhf).

    Returns:
        (candidates, theta (C, S) member win probabilities, samples (P, N, S) validated).
    """
    if not oversampling_factor >= 1:
        raise AcquisitionError(
            f"{rule}: oversampling_factor must be >= 1, got {oversampling_factor}"
        )
    samples = check_per_response(rule, "samples", inputs.samples, inputs, ndim=3)
    if samples.shape[2] < 1:
        raise AcquisitionError(f"{rule}: inputs.samples has no ensemble members (S = 0)")
    cands = sample_candidate_pairs(inputs.mask, max(k, int(oversampling_factor * k)), rng)
    return cands, member_win_probs(samples, cands), samples


def pair_difference_features(
    rule: str, inputs: AcquisitionInput, samples: np.ndarray, cands: CandidatePairs
) -> np.ndarray:
    """DUO's clustering feature: features_i - features_j, or r_e(i) - r_e(j) without features."""
    if inputs.features is not None:
        feats = check_per_response(rule, "features", inputs.features, inputs, ndim=3)
        fi, fj = cands.gather(feats)
    else:
        fi, fj = cands.gather(samples)
    return np.asarray(fi - fj, dtype=np.float64)


@register(
    "activerlhf_duo",
    kind="batch",
    truncation="score",
    needs=("samples",),
    paper=SOURCE,
    summary="ActiveRLHF DUO: top-half ensemble-range pairs, one per k-means cluster",
)
def activerlhf_duo(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    max_pairs: int | None = None,
    oversampling_factor: float = 10.0,
    consensual_filter: bool = False,
    n_init: int = 10,
    max_iter: int = 300,
) -> Selection:
    """Pick ``max_pairs`` diverse pairs among the most disputed by the reward ensemble (DUO).

    Why: uncertainty alone picks redundant pairs; clustering the uncertain half and asking
    one representative per cluster spends every label on a different kind of disagreement
    (https://github.com/bkuen/active-rlhf).

    Args:
        inputs: the batch; uses ``samples`` (per-member rewards), ``mask`` and, if present,
            ``features``.
        rng: draws the candidate pool and seeds k-means.
        max_pairs: pairs to return; None = one per prompt (P).
        oversampling_factor: candidate pool size as a multiple of ``max_pairs`` (10).
        consensual_filter: keep only pairs whose members disagree on the winner.
        n_init: k-means restarts (10 upstream).
        max_iter: Lloyd iterations per restart (300 upstream).

    Returns:
        At most ``max_pairs`` distinct pairs with ``score`` = ensemble range u; fewer only
        when the (filtered) pool is smaller.
    """
    k = resolve_budget("activerlhf_duo", max_pairs, inputs.shape[0])
    cands, theta, samples = oversampled_pool("activerlhf_duo", inputs, rng, k, oversampling_factor)
    pool_size = cands.size
    if consensual_filter:
        agree = (theta.min(axis=1) <= 0.5) & (theta.max(axis=1) >= 0.5)
        cands, theta = cands.take(np.flatnonzero(agree)), theta[agree]
    u = theta.max(axis=1) - theta.min(axis=1) if cands.size else np.zeros(0)
    n = cands.size
    kept = descending_order(u)[: max(n // 2, min(k, n))]
    info: dict[str, object] = {
        "candidates": pool_size,
        "after_filter": n,
        "kept_top_u": int(kept.size),
    }
    if kept.size <= k:
        return cands.to_selection(kept, u[kept], info=info | {"clusters": 0})
    feats = zscore_columns(pair_difference_features("activerlhf_duo", inputs, samples, cands)[kept])
    fit = kmeans(feats, k, rng, n_init=n_init, max_iter=max_iter)
    reps = kept[nearest_member_per_cluster(fit)]
    short = k - reps.size
    if short > 0:
        rest = kept[~np.isin(kept, reps)]
        reps = np.concatenate([reps, rest[:short]])
    info |= {"clusters": k, "filled_from_top_u": int(max(short, 0))}
    return cands.to_selection(reps, u[reps], info=info)
