"""Agreement between annotators: Cohen's kappa (two raters) and Fleiss' kappa (more).

Why: a majority vote hides how often people disagree; a lead needs the chance-corrected
agreement of each round to trust the labels (and to spot an annotator who clicks at random).
Votes are category indices (0: A, 1: B, 2: tie); a skip is no vote and is left out before these
functions see the votes. Both return NaN when agreement is undefined (no items, or every vote in
one category so chance agreement is 1).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

CATEGORIES = ("a", "b", "tie")
"""The vote categories, in index order."""


def cohen_kappa(first: ArrayLike, second: ArrayLike, n_categories: int = 3) -> float:
    """Cohen's kappa of two raters' votes on the same items (``first[i]``, ``second[i]``).

    Why: with two votes per pair, the first and second voter of each pair are the two raters;
    kappa = (p_o - p_e) / (1 - p_e) with each rater's own category marginals.
    """
    a = np.asarray(first, dtype=np.int64)
    b = np.asarray(second, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two equal-length vote vectors needed, got {a.shape} and {b.shape}")
    if a.size == 0:
        return float("nan")
    observed = float(np.mean(a == b))
    pa = np.bincount(a, minlength=n_categories) / a.size
    pb = np.bincount(b, minlength=n_categories) / b.size
    chance = float(pa @ pb)
    if chance >= 1.0:
        return float("nan")
    return (observed - chance) / (1.0 - chance)


def fleiss_kappa(votes: ArrayLike, n_categories: int = 3) -> float:
    """Fleiss' kappa of an items x raters matrix of votes (the same number of votes per item).

    Why: with three or more votes per pair the voters differ from pair to pair, which Fleiss'
    kappa allows (Cohen's needs the same two raters).
    """
    v = np.asarray(votes, dtype=np.int64)
    if v.ndim != 2:
        raise ValueError(f"an items x raters matrix needed, got shape {v.shape}")
    n_items, n_raters = v.shape
    if n_items == 0 or n_raters < 2:
        return float("nan")
    counts = (v[:, :, None] == np.arange(n_categories)).sum(axis=1)  # items x categories
    per_item = ((counts * (counts - 1)).sum(axis=1)) / (n_raters * (n_raters - 1))
    observed = float(per_item.mean())
    shares = counts.sum(axis=0) / (n_items * n_raters)
    chance = float(shares @ shares)
    if chance >= 1.0:
        return float("nan")
    return (observed - chance) / (1.0 - chance)


def agreement(votes: ArrayLike) -> tuple[str, float]:
    """The agreement of an items x raters vote matrix: ("cohen", kappa) for two raters,
    ("fleiss", kappa) for more, ("none", NaN) for one."""
    v = np.asarray(votes, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] < 2:
        return "none", float("nan")
    if v.shape[1] == 2:
        return "cohen", cohen_kappa(v[:, 0], v[:, 1])
    return "fleiss", fleiss_kappa(v)
