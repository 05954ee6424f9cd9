"""Is a reward head's uncertainty worth its name? Calibration metrics on held-out prompts.

An acquisition rule that spends labels where sigma is large only helps if sigma is large where
the head is wrong. Given a head and held-out prompts with judge scores, this measures:

* ``sigma_error_spearman``: Spearman correlation, over every held-out response, of sigma(y) with
  the error of mu(y) against the judge score. Bradley-Terry rewards are identified only up to a
  per-prompt shift and a global scale, so both mu and the scores are centred per prompt and mu
  is put on the score scale by the least-squares slope before taking |error|;
* ``pair_sigma_error_spearman``: the same for pairs, sigma(a - b) (the spread of the head's
  pairwise logit draws) against |p(a > b) - 1[judge prefers a]|;
* ``nll`` / ``nll_plugin``: mean negative log-likelihood of the judge's held-out preferences
  under the predictive probability mean_s sigmoid(logit_s) and under sigmoid(mean logit);
* ``ece`` / ``ece_plugin``: expected calibration error of those probabilities (Naeini et al.
  2015, https://ojs.aaai.org/index.php/AAAI/article/view/9602; Guo et al. 2017,
  https://arxiv.org/abs/1706.04599): confidence max(p, 1 - p) in equal-width bins on [0.5, 1],
  sum over bins of (bin share) * |mean confidence - accuracy|;
* ``accuracy`` (pairwise, as the loop's held-out accuracy), ``mean_sigma`` and ``sigma_cv``
  (the coefficient of variation of sigma over responses: near 0 means sigma cannot rank
  anything, the "uncertainty collapse" of a head).

Every held-out pair of a prompt whose judge scores differ counts once. Pure numpy functions plus
one that reads a head; no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from prefloop.reward.base import RewardHead

PAIR_CHUNK = 8192
"""Pairs per head call: bounds memory at 2 x 8192 x D features."""


class CalibrationInputError(ValueError):
    """Held-out features, scores or probabilities that cannot be evaluated."""


@dataclass(frozen=True)
class HeldoutPairs:
    """Every held-out pair with differing judge scores: prompt, the two slots, the outcome."""

    prompt: np.ndarray  # (Q,) prompt index
    first: np.ndarray  # (Q,) response slot a
    second: np.ndarray  # (Q,) response slot b
    outcome: np.ndarray  # (Q,) 1.0 if the judge scores a above b, else 0.0


def heldout_pairs(scores: np.ndarray, mask: np.ndarray) -> HeldoutPairs:
    """The pairs (a < b) of each prompt whose judge scores are both known and differ."""
    sc = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(sc)
    if sc.ndim != 2 or valid.shape != sc.shape:
        raise CalibrationInputError(f"scores {sc.shape} and mask must both be (P, N)")
    ii, jj = np.triu_indices(sc.shape[1], k=1)
    ok = valid[:, ii] & valid[:, jj] & (sc[:, ii] != sc[:, jj])
    prompt, pair = np.nonzero(ok)
    first, second = ii[pair], jj[pair]
    outcome = (sc[prompt, first] > sc[prompt, second]).astype(np.float64)
    return HeldoutPairs(prompt, first, second, outcome)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two 1-d arrays; NaN when either is constant or fewer than 3 values."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def centred_errors(mean: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(P, N) |slope * (mu - prompt mean) - (score - prompt mean)|, NaN outside the mask.

    Why: a Bradley-Terry reward is only defined up to a per-prompt shift and a scale, so the
    error of mu against the judge is taken after removing both (slope: least squares).
    """
    mu = np.asarray(mean, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(sc)
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mu_c = np.where(valid, mu - np.where(valid, mu, 0).sum(1, keepdims=True) / count, 0.0)
    sc_c = np.where(valid, sc - np.where(valid, sc, 0).sum(1, keepdims=True) / count, 0.0)
    denom = float((mu_c**2).sum())
    slope = float((mu_c * sc_c).sum()) / denom if denom > 0 else 0.0
    return np.where(valid, np.abs(slope * mu_c - sc_c), np.nan)


def preference_nll(prob: np.ndarray, outcome: np.ndarray, floor: float = 1e-6) -> float:
    """Mean -log p(outcome) of Bernoulli probabilities (clipped to [floor, 1 - floor])."""
    p = np.clip(np.asarray(prob, dtype=np.float64), floor, 1.0 - floor)
    y = np.asarray(outcome, dtype=np.float64)
    if p.shape != y.shape or p.size == 0:
        raise CalibrationInputError(f"prob {p.shape} and outcome {y.shape}: need equal, non-empty")
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def reliability_bins(
    prob: np.ndarray, outcome: np.ndarray, num_bins: int = 10
) -> tuple[float, list[dict[str, float]]]:
    """ECE and the reliability table of pairwise probabilities, by confidence max(p, 1 - p).

    Returns ``(ece, rows)``, one row per bin on [0.5, 1]: ``lower``, ``upper``, ``count``,
    ``confidence`` (mean) and ``accuracy`` (fraction where the more likely side won; NaN when
    empty). A perfectly calibrated head has accuracy == confidence in every bin.
    """
    if num_bins < 1:
        raise CalibrationInputError(f"num_bins must be >= 1, got {num_bins}")
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if p.shape != y.shape or p.size == 0:
        raise CalibrationInputError(f"prob {p.shape} and outcome {y.shape}: need equal, non-empty")
    confidence = np.maximum(p, 1.0 - p)
    correct = np.where(p == 0.5, 0.5, ((p > 0.5) == (y > 0.5)).astype(np.float64))
    edges = np.linspace(0.5, 1.0, num_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, num_bins - 1)
    counts = np.bincount(which, minlength=num_bins).astype(np.float64)
    conf_sum = np.bincount(which, weights=confidence, minlength=num_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_mean = conf_sum / counts
        acc_mean = acc_sum / counts
    filled = counts > 0
    ece = float((counts[filled] / p.size * np.abs(conf_mean - acc_mean)[filled]).sum())
    rows = [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": float(counts[b]),
            "confidence": float(conf_mean[b]),
            "accuracy": float(acc_mean[b]),
        }
        for b in range(num_bins)
    ]
    return ece, rows


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))))


def head_calibration(
    head: RewardHead,
    features: np.ndarray,
    scores: np.ndarray,
    mask: np.ndarray,
    num_bins: int = 10,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Every calibration metric of ``head`` on held-out (P, N, D) features; and its bins.

    Why: the one place that turns a trained head into the numbers of ``prefloop bench
    calibration`` (see the module docstring for each metric).
    """
    feats = np.asarray(features)
    if feats.ndim != 3 or feats.shape[:2] != np.shape(mask):
        raise CalibrationInputError(f"features {feats.shape} must be (P, N, D) matching the mask")
    sc = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(sc)
    pred = head.predict(feats[valid])
    mean = np.zeros(sc.shape)
    std = np.full(sc.shape, np.nan)
    mean[valid], std[valid] = pred.mean, pred.std
    errors = centred_errors(mean, sc, valid)
    pairs = heldout_pairs(sc, valid)
    if pairs.outcome.size == 0:
        raise CalibrationInputError("no held-out pair has differing judge scores")
    logits, draws = [], []
    for s in range(0, pairs.outcome.size, PAIR_CHUNK):
        sl = slice(s, s + PAIR_CHUNK)
        fa = feats[pairs.prompt[sl], pairs.first[sl]]
        fb = feats[pairs.prompt[sl], pairs.second[sl]]
        logits.append(np.asarray(head.pairwise_logit(fa, fb), dtype=np.float64))
        draws.append(np.asarray(head.pairwise_logit_samples(fa, fb), dtype=np.float64))
    logit = np.concatenate(logits)
    draw = np.concatenate(draws)
    p_plugin = sigmoid(logit)
    p_pred = sigmoid(draw).mean(axis=1)
    pair_sigma = draw.std(axis=1, ddof=1)
    ece, bins = reliability_bins(p_pred, pairs.outcome, num_bins)
    ece_plugin, _ = reliability_bins(p_plugin, pairs.outcome, num_bins)
    hits = np.where(logit == 0, 0.5, ((logit > 0) == (pairs.outcome > 0.5)).astype(np.float64))
    sig = std[valid]
    metrics = {
        "accuracy": float(hits.mean()),
        "sigma_error_spearman": rank_correlation(sig, errors[valid]),
        "pair_sigma_error_spearman": rank_correlation(pair_sigma, np.abs(p_pred - pairs.outcome)),
        "nll": preference_nll(p_pred, pairs.outcome),
        "nll_plugin": preference_nll(p_plugin, pairs.outcome),
        "ece": ece,
        "ece_plugin": ece_plugin,
        "mean_sigma": float(np.mean(sig)),
        "sigma_cv": float(np.std(sig) / np.mean(sig)) if np.mean(sig) > 0 else float("nan"),
        "num_pairs": float(pairs.outcome.size),
    }
    return metrics, bins
