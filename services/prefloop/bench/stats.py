"""Statistics for comparing acquisition rules over seeds: curves, paired tests, intervals.

ActiveRLHF's lesson (https://github.com/bkuen/active-rlhf) is that active-learning claims need
many seeds, whole learning curves and significance tests. Everything here is paired by seed: all
methods of one seed see the same shuffled prompts and the same held-out split.

* ``auc``: normalised area under a learning curve (trapezoid rule divided by the x-range), the
  curve's mean height, comparable across budgets;
* ``annotations_to_reach`` / ``value_at``: where a curve first reaches a value, and its value at
  a given number of annotations (linear interpolation);
* ``wilcoxon_vs_reference``: the paired Wilcoxon signed-rank test (Wilcoxon 1945) via scipy;
* ``holm``: Holm's step-down family-wise correction (Holm 1979);
* ``bootstrap_ci``: a seeded percentile bootstrap CI of the mean paired difference (Efron 1979).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import wilcoxon


class StatsInputError(ValueError):
    """A statistic was given inputs it cannot use (mismatched lengths, empty arrays)."""


def _curve(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise StatsInputError(f"x {xa.shape} and y {ya.shape} must be 1-D of the same length")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    order = np.argsort(xa, kind="stable")
    return xa[order], ya[order]


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised area under the curve y(x): trapezoid area / (x_max - x_min).

    Why: a single number for the whole learning curve that rewards learning early, not only the
    final value; normalising by the x-range keeps it on y's scale. One point gives that point's
    y; no finite point gives NaN.
    """
    xa, ya = _curve(x, y)
    if xa.size == 0:
        return float("nan")
    if xa.size == 1 or xa[-1] == xa[0]:
        return float(ya.mean())
    return float(np.trapezoid(ya, xa) / (xa[-1] - xa[0]))


def annotations_to_reach(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """The smallest x at which the curve reaches ``target`` (linear interpolation), else NaN.

    Why: the label-efficiency question is "how many annotations does this method need to match
    what Random reaches with its whole budget?". Between two measured points the crossing is
    interpolated linearly; a curve that starts at or above the target reaches it at its first x.
    """
    xa, ya = _curve(x, y)
    if xa.size == 0 or not math.isfinite(target):
        return float("nan")
    hit = np.nonzero(ya >= target)[0]
    if hit.size == 0:
        return float("nan")
    k = int(hit[0])
    if k == 0:
        return float(xa[0])
    x0, x1, y0, y1 = xa[k - 1], xa[k], ya[k - 1], ya[k]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def value_at(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The curve's value at ``at`` annotations (linear interpolation; NaN outside its x-range)."""
    xa, ya = _curve(x, y)
    if xa.size == 0 or not (xa[0] <= at <= xa[-1]):
        return float("nan")
    return float(np.interp(at, xa, ya))


def efficiency_ratio(needed: float, reference_annotations: float) -> float:
    """Annotations a method needs to reach the reference's final value / the reference's total.

    Below 1 the method is more label-efficient than the reference (0.5: half the labels).
    """
    if not (reference_annotations > 0) or not math.isfinite(needed):
        return float("nan")
    return float(needed / reference_annotations)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries stay NaN and are not counted).

    Why: each method is tested against Random on several metrics; Holm controls the family-wise
    error rate without assuming independence and is uniformly more powerful than Bonferroni.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.nonzero(np.isfinite(p))[0]
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted)
    return out


def wilcoxon_vs_reference(
    values: np.ndarray, reference: np.ndarray, alternative: str = "two-sided"
) -> tuple[float, float]:
    """Paired Wilcoxon signed-rank test of ``values - reference`` over seeds.

    Returns ``(median difference, p-value)``. The p-value is NaN with fewer than two finite
    pairs, and 1.0 when every difference is zero (no evidence either way). Note the floor on
    small samples: with 5 seeds the smallest two-sided p is 0.0625 and one-sided 0.03125.
    """
    v = np.asarray(values, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if v.shape != r.shape or v.ndim != 1:
        raise StatsInputError(f"values {v.shape} and reference {r.shape} must be paired 1-D")
    keep = np.isfinite(v) & np.isfinite(r)
    d = v[keep] - r[keep]
    if d.size < 2:
        return (float(np.median(d)) if d.size else float("nan"), float("nan"))
    if np.all(d == 0):
        return 0.0, 1.0
    res = wilcoxon(d, alternative=alternative, zero_method="wilcox")
    return float(np.median(d)), float(res.pvalue)


def bootstrap_ci(
    differences: np.ndarray,
    rng: np.random.Generator,
    *,
    n_resamples: int = 10_000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired differences (resampling seeds)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan"), float("nan")
    if not 0 < level < 1:
        raise StatsInputError(f"level must be in (0, 1), got {level}")
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def first_crossing(x: np.ndarray, y: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(B,) the x where each row of the (B, R) curves y(x) first reaches its target; NaN if never.

    Why: the vectorised form of ``annotations_to_reach`` for thousands of bootstrap resamples
    (same rule: linear interpolation between the last point below and the first at or above).
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)[:, None]
    hit = ya >= t
    reached = hit.any(axis=1)
    k = np.argmax(hit, axis=1)
    rows = np.arange(ya.shape[0])
    prev = np.maximum(k - 1, 0)
    x0, x1 = xa[rows, prev], xa[rows, k]
    y0, y1 = ya[rows, prev], ya[rows, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(y1 > y0, (t[:, 0] - y0) / (y1 - y0), 1.0)
    out = np.where(k == 0, x1, x0 + np.clip(frac, 0.0, 1.0) * (x1 - x0))
    return np.where(reached & np.isfinite(t[:, 0]), out, np.nan)


def labels_to_reach_ci(
    method_x: np.ndarray,
    method_y: np.ndarray,
    reference_x: np.ndarray,
    reference_y: np.ndarray,
    rng: np.random.Generator,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> dict[str, float]:
    """Labels a method needs to reach the reference's final value, as a ratio, with a CI.

    Why: "how many labels does this method need to match what Random reaches with all of its
    labels" is the user's question; its uncertainty comes from the seeds. Curves are (S, R):
    seed s of the method is paired with seed s of the reference (same prompts). Each bootstrap
    resample draws S seeds with replacement, averages both curves over them, and computes the x
    where the method's mean curve reaches the reference's mean final value, divided by the
    reference's mean final x. A resample where the method never gets there counts as +inf, so
    an upper bound of inf reads "not reached in more than (1 - level) / 2 of the resamples".

    Returns ``ratio`` (on all seeds), ``ratio_low``, ``ratio_high`` and ``reached_share`` (the
    share of resamples in which the method reaches the target).
    """
    mx, my = np.asarray(method_x, np.float64), np.asarray(method_y, np.float64)
    rx, ry = np.asarray(reference_x, np.float64), np.asarray(reference_y, np.float64)
    if mx.shape != my.shape or rx.shape != ry.shape or mx.shape[0] != rx.shape[0] or mx.ndim != 2:
        raise StatsInputError(
            f"curves must be (S, R) with the same seeds S: method {mx.shape}/{my.shape}, "
            f"reference {rx.shape}/{ry.shape}"
        )
    if not 0 < level < 1:
        raise StatsInputError(f"level must be in (0, 1), got {level}")
    seeds = mx.shape[0]
    idx = np.vstack([np.arange(seeds), rng.integers(0, seeds, size=(n_resamples, seeds))])
    with np.errstate(invalid="ignore"):
        curve_x = mx[idx].mean(axis=1)
        curve_y = np.nanmean(my[idx], axis=1)
        target = np.nanmean(ry[idx][:, :, -1], axis=1)
        ref_total = rx[idx][:, :, -1].mean(axis=1)
    ratio = first_crossing(curve_x, curve_y, target) / ref_total
    boot = np.where(np.isnan(ratio[1:]), np.inf, ratio[1:])
    # order statistics, not interpolation: inf - inf would give NaN
    lo = np.quantile(boot, (1 - level) / 2, method="lower")
    hi = np.quantile(boot, 1 - (1 - level) / 2, method="higher")
    return {
        "ratio": float(ratio[0]),
        "ratio_low": float(lo),
        "ratio_high": float(hi),
        "reached_share": float(np.isfinite(boot).mean()),
    }
