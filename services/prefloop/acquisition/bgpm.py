"""BGPM acquisition: max-variance, BALD and UCB on Bayesian general-preference embeddings.

Paper: the General Preference Model (GPM), Zhang et al., https://arxiv.org/abs/2410.02197,
with the Bayesian head and active learning of ``muhd-umer/b-gpm``
(``b_gpm/active_learning/{acquisition,batch_selection}.py``). Spec: ``seeds_001_004`` section 3.

Every response has a preference embedding v in R^{2k}; the preference score is
s(i > j) = <R v_i, v_j> = sum_l v_i[2l] v_j[2l+1] - v_i[2l+1] v_j[2l] with R the block-diagonal
skew operator (blocks [[0, -1], [1, 0]]), so s(i, j) = -s(j, i). The Bayesian head gives each
response a Gaussian N(mu, diag(v)) with mu on the unit sphere. Treating both embeddings as
independent Gaussians (no sphere re-projection), with ``swap`` exchanging the two coordinates
of every 2-block:

    E[s]   = <R mu_i, mu_j>
    Var[s] = sum mu_i^2 swap(v_j) + sum mu_j^2 swap(v_i) + sum v_i swap(v_j)

* ``bgpm_mv``: alpha = Var[s] (the upstream default). It is exact for the un-normalised
  Gaussian and a proxy ranking for the re-projected embedding the model trains with.
* ``bgpm_bald``: S = 20 reparameterised draws z = normalize(mu + eps sqrt(v)) per response,
  p_s = sigmoid(s(z_i, z_j) / tau_b) with tau_b = 0.1, alpha = H(mean_s p_s) - mean_s H(p_s)
  (binary entropy, p clamped to [1e-7, 1 - 1e-7]).
* ``bgpm_ucb``: alpha = |E[s]| + kappa sqrt(Var[s]), kappa = 1. The |E[s]| term rewards
  confident pairs too: it is not a pure uncertainty score.

All three are symmetric in (i, j). Adaptation to prefloop: the pool is every same-prompt pair
i < j of the batch (``pref_mean`` / ``pref_var`` are (P, N, 2k), ``pref_var`` the variances
exp(logvar)), scored in one vectorised pass. ``selection`` picks the batch: ``per_prompt`` the
best pair of each prompt (top ``max_pairs`` prompts by it), ``top_k`` the global top, and
``cluster_diverse`` the repository's ClusterDiverseSelector (always on in its script) on the
pair features [mu_i, mu_j, sigma_i, sigma_j], with k-means seeded from the run's generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    CandidatePairs,
    all_candidate_pairs,
    check_per_response,
    cluster_diverse_select,
    resolve_budget,
    top_k_pairs,
)
from prefloop.acquisition.registry import register

PAPER = "https://arxiv.org/abs/2410.02197"
BatchMode = Literal["per_prompt", "top_k", "cluster_diverse"]
_PROB_CLAMP = 1e-7


def skew_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GPM preference score <R a, b> over the last axis (even length)."""
    return np.asarray(
        np.sum(a[..., 0::2] * b[..., 1::2] - a[..., 1::2] * b[..., 0::2], axis=-1),
        dtype=np.float64,
    )


def swap_blocks(v: np.ndarray) -> np.ndarray:
    """Exchange the two coordinates of every 2-block: [0, 1, 2, 3, ...] -> [1, 0, 3, 2, ...]."""
    out = np.empty_like(v)
    out[..., 0::2] = v[..., 1::2]
    out[..., 1::2] = v[..., 0::2]
    return out


def preference_moments(
    mu_i: np.ndarray, mu_j: np.ndarray, var_i: np.ndarray, var_j: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form E[s] and Var[s] of s = <R v_i, v_j> for independent diagonal Gaussians.

    Why: MV and UCB need the score's posterior moments without sampling
    (https://arxiv.org/abs/2410.02197, b-gpm ``acquisition.py``). Each term v_i[a] v_j[b] of s
    pairs coordinate a of i with its block partner b = swap(a) of j, and distinct terms share
    no variable, so Var[s] = sum over terms of mu_a^2 v_b + mu_b^2 v_a + v_a v_b.
    """
    mean = skew_score(mu_i, mu_j)
    var = np.sum(
        mu_i**2 * swap_blocks(var_j) + mu_j**2 * swap_blocks(var_i) + var_i * swap_blocks(var_j),
        axis=-1,
    )
    return mean, np.asarray(var, dtype=np.float64)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    return np.asarray(-p * np.log(p) - (1.0 - p) * np.log1p(-p), dtype=np.float64)


def _normalize(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12))


def bald_scores(
    mu_i: np.ndarray,
    mu_j: np.ndarray,
    var_i: np.ndarray,
    var_j: np.ndarray,
    rng: np.random.Generator,
    n_samples: int = 20,
    tau: float = 0.1,
) -> np.ndarray:
    """BALD mutual information of the pair's outcome and the embeddings, by Monte Carlo.

    Why: BALD prefers pairs where posterior draws disagree *confidently* (each draw sure, the
    draws split), which variance alone cannot tell from a coin flip
    (https://arxiv.org/abs/2410.02197, b-gpm ``BALD``). Draws are re-projected onto the sphere
    like the trained model; the loop runs over the S draws, each vectorised over all pairs.
    """
    sd_i, sd_j = np.sqrt(var_i), np.sqrt(var_j)
    prob_sum = np.zeros(mu_i.shape[0])
    entropy_sum = np.zeros(mu_i.shape[0])
    for _ in range(n_samples):
        z_i = _normalize(mu_i + rng.standard_normal(mu_i.shape) * sd_i)
        z_j = _normalize(mu_j + rng.standard_normal(mu_j.shape) * sd_j)
        p = 0.5 * (1.0 + np.tanh(0.5 * skew_score(z_i, z_j) / tau))
        prob_sum += p
        entropy_sum += _binary_entropy(np.clip(p, _PROB_CLAMP, 1.0 - _PROB_CLAMP))
    mean_p = np.clip(prob_sum / n_samples, _PROB_CLAMP, 1.0 - _PROB_CLAMP)
    return np.asarray(_binary_entropy(mean_p) - entropy_sum / n_samples, dtype=np.float64)


def _pair_embeddings(
    rule: str, inputs: AcquisitionInput
) -> tuple[CandidatePairs, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All candidate pairs with their gathered embedding means and variances, validated."""
    mean = check_per_response(rule, "pref_mean", inputs.pref_mean, inputs, ndim=3)
    var = check_per_response(rule, "pref_var", inputs.pref_var, inputs, ndim=3, nonnegative=True)
    if mean.shape != var.shape:
        raise AcquisitionError(
            f"{rule}: inputs.pref_var {var.shape} must have the shape of pref_mean {mean.shape}"
        )
    if mean.shape[2] == 0 or mean.shape[2] % 2:
        raise AcquisitionError(
            f"{rule}: the preference embedding dimension must be even and > 0, got {mean.shape[2]}"
        )
    cands = all_candidate_pairs(inputs.mask)
    mu_i, mu_j = cands.gather(mean)
    var_i, var_j = cands.gather(var)
    return cands, mu_i, mu_j, var_i, var_j


def select_scored_pairs(
    rule: str,
    cands: CandidatePairs,
    scores: np.ndarray,
    pair_features: np.ndarray,
    n_prompts: int,
    rng: np.random.Generator,
    *,
    selection: BatchMode,
    max_pairs: int | None,
    n_clusters: int | None,
) -> Selection:
    """Turn per-candidate BGPM scores into a Selection with the requested batch strategy.

    Why: the acquisition score and the batch strategy are separate choices upstream
    (``AcquisitionFunction`` x ``BatchSelector``); this applies the latter.
    """
    k = resolve_budget(rule, max_pairs, n_prompts)
    info: dict[str, object] = {"candidates": cands.size, "selection": selection}
    if selection == "per_prompt":
        idx = top_k_pairs(scores, cands.prompt_index, k, per_group_cap=1)
    elif selection == "top_k":
        idx = top_k_pairs(scores, cands.prompt_index, k)
    elif selection == "cluster_diverse":
        idx, cluster_info = cluster_diverse_select(
            scores, pair_features, k, rng, n_clusters=n_clusters
        )
        info.update(cluster_info)
    else:
        raise AcquisitionError(
            f"{rule}: selection must be 'per_prompt', 'top_k' or 'cluster_diverse', "
            f"got {selection!r}"
        )
    return cands.to_selection(idx, scores[idx], info=info)


def _features(
    mu_i: np.ndarray, mu_j: np.ndarray, var_i: np.ndarray, var_j: np.ndarray
) -> np.ndarray:
    """The repository's pair features for clustering: [mu_i, mu_j, sigma_i, sigma_j]."""
    return np.concatenate([mu_i, mu_j, np.sqrt(var_i), np.sqrt(var_j)], axis=1)


PairScore = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(mu_i, mu_j, var_i, var_j) -> score`` of every candidate pair (higher = query first)."""


def _select_by_embedding_score(
    rule: str,
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    score: PairScore,
    *,
    selection: BatchMode,
    max_pairs: int | None,
    n_clusters: int | None,
) -> Selection:
    """Score every same-prompt pair from its embedding moments, then select the batch.

    Why: the three BGPM rules (https://arxiv.org/abs/2410.02197) differ only in the score;
    the candidate pool, the clustering features and the batch strategy are the same.
    """
    cands, mu_i, mu_j, var_i, var_j = _pair_embeddings(rule, inputs)
    scores = score(mu_i, mu_j, var_i, var_j)
    # only the clustering strategy reads the pair features; skip building them otherwise
    features = (
        _features(mu_i, mu_j, var_i, var_j)
        if selection == "cluster_diverse"
        else np.zeros((cands.size, 0))
    )
    return select_scored_pairs(
        rule,
        cands,
        scores,
        features,
        inputs.shape[0],
        rng,
        selection=selection,
        max_pairs=max_pairs,
        n_clusters=n_clusters,
    )


@register(
    "bgpm_mv",
    kind="batch",
    truncation="score",
    needs=("pref",),
    paper=PAPER,
    summary="BGPM max-variance: pairs with the largest closed-form Var of the GPM score",
)
def bgpm_mv(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    selection: BatchMode = "per_prompt",
    max_pairs: int | None = None,
    n_clusters: int | None = None,
) -> Selection:
    """Select pairs by the closed-form variance of the preference score (BGPM's default).

    Why: the cheapest epistemic signal of the Bayesian GPM head, no sampling needed
    (https://arxiv.org/abs/2410.02197).

    Args:
        inputs: the batch; uses ``pref_mean``, ``pref_var`` and ``mask``.
        rng: seeds k-means when ``selection="cluster_diverse"``.
        selection: ``per_prompt`` (best pair of each prompt), ``top_k`` or ``cluster_diverse``.
        max_pairs: pairs to return; None = one per prompt (P).
        n_clusters: clusters for ``cluster_diverse``; None = max(2, floor(sqrt(k))).
    """

    def variance(
        mu_i: np.ndarray, mu_j: np.ndarray, var_i: np.ndarray, var_j: np.ndarray
    ) -> np.ndarray:
        return preference_moments(mu_i, mu_j, var_i, var_j)[1]

    return _select_by_embedding_score(
        "bgpm_mv",
        inputs,
        rng,
        variance,
        selection=selection,
        max_pairs=max_pairs,
        n_clusters=n_clusters,
    )


@register(
    "bgpm_bald",
    kind="batch",
    truncation="score",
    needs=("pref",),
    paper=PAPER,
    summary="BGPM BALD: mutual information of the outcome and the embeddings (20 MC draws)",
)
def bgpm_bald(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    n_samples: int = 20,
    tau: float = 0.1,
    selection: BatchMode = "per_prompt",
    max_pairs: int | None = None,
    n_clusters: int | None = None,
) -> Selection:
    """Select pairs by BALD on reparameterised sphere samples of the two embeddings.

    Why: picks pairs whose outcome the posterior is split on, not merely noisy
    (https://arxiv.org/abs/2410.02197).

    Args:
        inputs: the batch; uses ``pref_mean``, ``pref_var`` and ``mask``.
        rng: draws the Monte Carlo noise (then seeds k-means for ``cluster_diverse``).
        n_samples: Monte Carlo draws per pair (``bald_n_samples``, 20).
        tau: temperature of sigma(s / tau) (0.1, the GPM tau).
        selection: ``per_prompt``, ``top_k`` or ``cluster_diverse``.
        max_pairs: pairs to return; None = one per prompt (P).
        n_clusters: clusters for ``cluster_diverse``; None = max(2, floor(sqrt(k))).
    """
    if isinstance(n_samples, bool) or n_samples < 1:
        raise AcquisitionError(f"bgpm_bald: n_samples must be an integer >= 1, got {n_samples!r}")
    if not tau > 0:
        raise AcquisitionError(f"bgpm_bald: tau must be > 0, got {tau}")

    def bald(
        mu_i: np.ndarray, mu_j: np.ndarray, var_i: np.ndarray, var_j: np.ndarray
    ) -> np.ndarray:
        return bald_scores(mu_i, mu_j, var_i, var_j, rng, int(n_samples), float(tau))

    return _select_by_embedding_score(
        "bgpm_bald",
        inputs,
        rng,
        bald,
        selection=selection,
        max_pairs=max_pairs,
        n_clusters=n_clusters,
    )


@register(
    "bgpm_ucb",
    kind="batch",
    truncation="score",
    needs=("pref",),
    paper=PAPER,
    summary="BGPM UCB: |E[s]| + kappa sqrt(Var[s]) of the GPM preference score",
)
def bgpm_ucb(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    kappa: float = 1.0,
    selection: BatchMode = "per_prompt",
    max_pairs: int | None = None,
    n_clusters: int | None = None,
) -> Selection:
    """Select pairs by |E[s]| + kappa sqrt(Var[s]), as in the BGPM repository.

    Why: the repository's optimistic score (https://arxiv.org/abs/2410.02197); note that the
    |E[s]| term favours pairs the model is already sure about as well as uncertain ones.

    Args:
        inputs: the batch; uses ``pref_mean``, ``pref_var`` and ``mask``.
        rng: seeds k-means when ``selection="cluster_diverse"``.
        kappa: weight of the standard deviation (1.0).
        selection: ``per_prompt``, ``top_k`` or ``cluster_diverse``.
        max_pairs: pairs to return; None = one per prompt (P).
        n_clusters: clusters for ``cluster_diverse``; None = max(2, floor(sqrt(k))).
    """
    if kappa < 0:
        raise AcquisitionError(f"bgpm_ucb: kappa must be >= 0, got {kappa}")

    def ucb(mu_i: np.ndarray, mu_j: np.ndarray, var_i: np.ndarray, var_j: np.ndarray) -> np.ndarray:
        mean, var = preference_moments(mu_i, mu_j, var_i, var_j)
        return np.asarray(np.abs(mean) + float(kappa) * np.sqrt(var))

    return _select_by_embedding_score(
        "bgpm_ucb",
        inputs,
        rng,
        ucb,
        selection=selection,
        max_pairs=max_pairs,
        n_clusters=n_clusters,
    )
