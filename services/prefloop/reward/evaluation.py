"""Held-out quality of a reward head against judge scores: pairwise accuracy and rank correlation.

The loop's reward model exists to rank responses the way the judge would. Two numbers measure
that on prompts the head never trained on:

* pairwise accuracy over every pair of responses of a prompt whose judge scores differ: the
  fraction where the head's ``pairwise_logit`` has the judge's sign (a logit of exactly 0 counts
  half). Using ``pairwise_logit`` rather than mean differences keeps the metric meaningful for
  the intransitive BGPM head; for scalar heads the two are identical.
* the mean over prompts of the Spearman correlation between predicted mean reward and judge
  score (prompts whose scores or predictions are all tied are left out).

This is the RewardBench-style protocol (Lambert et al. 2024, https://arxiv.org/abs/2403.13787)
applied to multi-response pools, as in ActiveUltraFeedback's reward-model evaluation
(https://arxiv.org/abs/2603.09692).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from prefloop.reward.base import RewardHead

PAIR_CHUNK = 8192
"""Pairs scored per ``pairwise_logit`` call: bounds memory at 2 x 8192 x D features."""


class EvaluationInputError(ValueError):
    """Features, scores and mask given to an evaluation do not agree in shape or content."""


def _check_inputs(
    features: np.ndarray, scores: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    feats = np.asarray(features)
    sc = np.asarray(scores, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if feats.ndim != 3:
        raise EvaluationInputError(f"features: expected (P, N, D), got shape {feats.shape}")
    if sc.shape != feats.shape[:2] or m.shape != feats.shape[:2]:
        raise EvaluationInputError(
            f"scores {sc.shape} and mask {m.shape} must both match features' (P, N) = "
            f"{feats.shape[:2]}"
        )
    # Unknown scores (NaN) make a response unusable for evaluation: treat it as masked.
    return feats, sc, m & np.isfinite(sc)


def per_prompt_spearman(predicted: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(P,) Spearman rho of predicted vs judge scores over each prompt's valid responses.

    Vectorised over prompts: ranks are computed with NaN outside the mask (average ranks for
    ties), then a Pearson correlation of the ranks per row. Rows with fewer than two valid
    responses or no variance in either ranking are NaN.
    """
    pred = np.where(mask, predicted, np.nan)
    sc = np.where(mask, scores, np.nan)
    rp = rankdata(pred, axis=1, nan_policy="omit")
    rs = rankdata(sc, axis=1, nan_policy="omit")
    count = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dp = rp - np.nanmean(np.where(mask, rp, np.nan), axis=1, keepdims=True)
        ds = rs - np.nanmean(np.where(mask, rs, np.nan), axis=1, keepdims=True)
        dp = np.where(mask, dp, 0.0)
        ds = np.where(mask, ds, 0.0)
        cov = (dp * ds).sum(axis=1)
        denom = np.sqrt((dp**2).sum(axis=1) * (ds**2).sum(axis=1))
        rho = cov / denom
    rho[(count < 2) | ~(denom > 0)] = np.nan
    return np.asarray(rho, dtype=np.float64)


def pairwise_accuracy(
    head: RewardHead, features: np.ndarray, scores: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """Held-out pairwise accuracy, pair count and mean per-prompt Spearman of a head.

    Args:
        head: any ``RewardHead``.
        features: (P, N, D) frozen features of every response (padding rows ignored).
        scores: (P, N) judge scores; NaN where unknown.
        mask: (P, N) True where a response exists.

    Returns:
        ``accuracy`` (NaN when no pair has differing scores), ``num_pairs``, ``spearman`` (mean
        over prompts where it is defined, NaN if none) and ``num_prompts_spearman``.
    """
    feats, sc, valid = _check_inputs(features, scores, mask)
    p, n = sc.shape
    ii, jj = np.triu_indices(n, k=1)
    pair_ok = valid[:, ii] & valid[:, jj]
    diff = sc[:, ii] - sc[:, jj]
    pair_ok &= diff != 0
    prompt_idx, pair_idx = np.nonzero(pair_ok)
    num_pairs = int(prompt_idx.size)
    accuracy = float("nan")
    if num_pairs:
        first, second = ii[pair_idx], jj[pair_idx]
        logit = np.concatenate(
            [
                np.asarray(
                    head.pairwise_logit(
                        feats[prompt_idx[s : s + PAIR_CHUNK], first[s : s + PAIR_CHUNK]],
                        feats[prompt_idx[s : s + PAIR_CHUNK], second[s : s + PAIR_CHUNK]],
                    ),
                    dtype=np.float64,
                )
                for s in range(0, num_pairs, PAIR_CHUNK)
            ]
        )
        truth = np.sign(diff[prompt_idx, pair_idx])
        hits = np.where(logit == 0, 0.5, (np.sign(logit) == truth).astype(np.float64))
        accuracy = float(hits.mean())
    spearman = float("nan")
    num_rho = 0
    if valid.any():
        pred = np.zeros((p, n), dtype=np.float64)
        pred[valid] = head.predict(feats[valid]).mean
        rho = per_prompt_spearman(pred, sc, valid)
        defined = np.isfinite(rho)
        num_rho = int(defined.sum())
        if num_rho:
            spearman = float(rho[defined].mean())
    return {
        "accuracy": accuracy,
        "num_pairs": float(num_pairs),
        "spearman": spearman,
        "num_prompts_spearman": float(num_rho),
    }
