"""Seeded k-means in plain numpy, for the diversity-aware batch rules.

Two batch rules cluster candidate pairs and need a k-means that is reproducible from the
run's ``numpy.random.Generator`` (never a global seed, never scikit-learn's internal state):

* BGPM's ``ClusterDiverseSelector`` (spec ``seeds_001_004`` section 3.5) clusters pair features
  and spends the budget in proportion to each cluster's summed acquisition score;
* ActiveRLHF's DUO selector (section 4.3) clusters the high-uncertainty half of the candidates
  with k = number of pairs to ask and keeps the member nearest each centroid.

The algorithm is the usual one: k-means++ seeding (Arthur & Vassilvitskii 2007,
https://dl.acm.org/doi/10.5555/1283383.1283494) drawn from the generator, then Lloyd
iterations until the labels stop changing or the centres move less than ``tol``; the best of
``n_init`` restarts by inertia wins. A cluster that goes empty is re-seeded at the point that
is currently worst served (farthest from its centre), as scikit-learn does, so as long as the
data has at least k distinct rows no cluster is returned empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefloop.acquisition.base import AcquisitionError


@dataclass(frozen=True)
class KMeansResult:
    """One k-means fit.

    Attributes:
        labels: (n,) cluster of every row, in ``range(k)``.
        centers: (k, d) cluster centres.
        inertia: sum of squared distances of the rows to their centres.
        sq_dist: (n,) squared distance of every row to its own centre.
    """

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    sq_dist: np.ndarray


def squared_distances(
    x: np.ndarray, centers: np.ndarray, x_sq: np.ndarray | None = None
) -> np.ndarray:
    """(n, k) squared Euclidean distances, via ||x||^2 - 2 x.c + ||c||^2 (clipped at 0).

    ``x_sq`` (the rows' squared norms) can be passed in when it is reused across calls.
    """
    if x_sq is None:
        x_sq = np.einsum("nd,nd->n", x, x)
    d2 = x_sq[:, None] - 2.0 * (x @ centers.T) + np.einsum("kd,kd->k", centers, centers)[None, :]
    return np.maximum(d2, 0.0)


def _distances_to(x: np.ndarray, x_sq: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(n,) squared distances to one centre; einsum, not BLAS, so no thread start-up per call."""
    d2 = x_sq - 2.0 * np.einsum("nd,d->n", x, center) + float(center @ center)
    return np.maximum(d2, 0.0)


def kmeans_plus_plus(x: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: first centre uniform, each next one drawn with probability ~ D(x)^2.

    Why: it spreads the initial centres out, which makes Lloyd converge to a good optimum with
    few restarts (Arthur & Vassilvitskii 2007). When every remaining point coincides with a
    chosen centre (duplicate rows), the next centre is drawn uniformly instead.
    """
    n = x.shape[0]
    x_sq = np.einsum("nd,nd->n", x, x)
    centers = np.empty((n_clusters, x.shape[1]), dtype=np.float64)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = _distances_to(x, x_sq, centers[0])
    for c in range(1, n_clusters):
        cumulative = np.cumsum(closest)
        total = float(cumulative[-1])
        if total > 0.0 and np.isfinite(total):
            draw = rng.random() * total
            idx = min(int(np.searchsorted(cumulative, draw, side="right")), n - 1)
        else:
            idx = int(rng.integers(n))
        centers[c] = x[idx]
        closest = np.minimum(closest, _distances_to(x, x_sq, centers[c]))
    return centers


def _update_centers(
    x: np.ndarray, labels: np.ndarray, centers: np.ndarray, sq_dist: np.ndarray
) -> np.ndarray:
    """Mean of each cluster; empty clusters are moved to the worst-served points."""
    k = centers.shape[0]
    counts = np.bincount(labels, minlength=k)
    filled = counts > 0
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts[filled])[:-1]])
    new = centers.copy()
    new[filled] = np.add.reduceat(x[order], starts, axis=0) / counts[filled, None]
    empty = np.flatnonzero(~filled)
    if empty.size:
        far = np.argsort(-sq_dist, kind="stable")[: empty.size]
        new[empty[: far.size]] = x[far]
    return new


def _lloyd(
    x: np.ndarray, centers: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full(x.shape[0], -1, dtype=np.int64)
    x_sq = np.einsum("nd,nd->n", x, x)
    for _ in range(max_iter):
        d2 = squared_distances(x, centers, x_sq)
        new_labels = np.argmin(d2, axis=1)
        sq = d2[np.arange(x.shape[0]), new_labels]
        new_centers = _update_centers(x, new_labels, centers, sq)
        shift = float(np.sum((new_centers - centers) ** 2))
        converged = np.array_equal(new_labels, labels) or shift <= tol
        labels, centers = new_labels, new_centers
        if converged:
            break
    return labels, centers


def kmeans(
    x: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-10,
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``n_clusters`` groups; deterministic given ``rng``'s state.

    Why: the batch rules need clusters that are identical in every deployment mode for the same
    seed, so all randomness (the k-means++ draws of every restart) comes from ``rng``.

    Args:
        x: (n, d) finite data.
        n_clusters: k, between 1 and n.
        rng: the generator every restart draws its seeding from.
        n_init: restarts; the fit with the lowest inertia is returned.
        max_iter: Lloyd iterations per restart.
        tol: stop a restart once the centres move less than this (summed squared shift).

    Returns:
        The best ``KMeansResult``; labels are recomputed from the final centres.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise AcquisitionError(f"kmeans: data must be 2-D (n, d), got shape {x.shape}")
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise AcquisitionError(f"kmeans: n_clusters={n_clusters} must be in [1, {n}] (rows)")
    if n_init < 1 or max_iter < 1:
        raise AcquisitionError(f"kmeans: n_init={n_init} and max_iter={max_iter} must be >= 1")
    if not np.all(np.isfinite(x)):
        raise AcquisitionError("kmeans: data contains NaN or infinite values")
    best: KMeansResult | None = None
    for _ in range(n_init):
        centers = kmeans_plus_plus(x, n_clusters, rng)
        _, centers = _lloyd(x, centers, max_iter, tol)
        d2 = squared_distances(x, centers)
        labels = np.argmin(d2, axis=1)
        sq = d2[np.arange(n), labels]
        inertia = float(sq.sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(labels, centers, inertia, sq)
    assert best is not None
    return best


def nearest_member_per_cluster(result: KMeansResult) -> np.ndarray:
    """Index of the row closest to its centre in every non-empty cluster, by cluster id.

    Why: DUO asks about one representative pair per cluster, the medoid-like member nearest
    the centroid (ties go to the lower row index).
    """
    order = np.lexsort((np.arange(result.labels.size), result.sq_dist, result.labels))
    sorted_labels = result.labels[order]
    first_of_group = np.ones(order.size, dtype=bool)
    first_of_group[1:] = sorted_labels[1:] != sorted_labels[:-1]
    return np.asarray(order[first_of_group], dtype=np.int64)
