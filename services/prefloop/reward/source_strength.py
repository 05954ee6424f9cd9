"""Source-model strengths: a Bradley-Terry posterior over *which LLM wrote a response*.

Every prompt is answered by the same pool of LLMs, and which LLM wrote an answer predicts its
judged quality far better than a small head on frozen sentence features does early in a run (on
AlpacaEval the answers of the best of 16 models score 0.71 on average, the worst 0.02). A rule
that wants the prompt's best and worst answers (DeltaUCB, DRTS: the "delta" that
ActiveUltraFeedback, https://arxiv.org/abs/2603.09692, and delta learning,
https://arxiv.org/abs/2507.06187, find most useful) should therefore use what the judge has
already said about each model.

This module fits, from the judged pairs so far, one strength theta_m per source model under the
Bradley-Terry likelihood P(a beats b) = sigmoid(theta_a - theta_b) (Bradley & Terry 1952) with a
Gaussian prior theta ~ N(0, 1 / prior_precision): the maximum a posteriori point by Newton's
method and the Laplace approximation of its covariance (the inverse Hessian). Models never
judged keep the prior (mean 0, variance 1 / prior_precision), so optimistic rules explore them.

:func:`with_source_strengths` adds the strengths to the reward head's estimates - mean + w theta,
variance + w^2 var(theta), and one joint posterior draw of theta per member sample - so every rule
that reads mu, sigma or samples sees them, unchanged. It is a pure function of the labels (no
state to checkpoint: a resumed run refits the same numbers from the same pairs) and runs in the
engine, so the embedded, service and operator modes compute the same values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from prefloop.engine.roles import RewardScores

NEWTON_ITERATIONS = 50
"""Upper bound on Newton steps; the MAP objective is strictly concave, so it converges in a few."""
NEWTON_TOLERANCE = 1e-10
"""Stop when the largest change of a strength is below this."""


class SourceStrengthError(ValueError):
    """Bad input to the source-strength fit (shapes, weights, prior)."""


@dataclass(frozen=True)
class SourceStrengths:
    """The Laplace posterior of the source models' Bradley-Terry strengths."""

    models: tuple[str, ...]
    """Model names, in the order of ``mean`` and ``covariance``."""
    mean: np.ndarray
    """(M,) MAP strengths (logits; only differences matter)."""
    covariance: np.ndarray
    """(M, M) posterior covariance (inverse Hessian at the MAP)."""
    prior_precision: float
    """Precision of the N(0, 1/prior_precision) prior, also the variance of unseen models."""

    def lookup(self, names: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-entry (strength, variance, model index or -1) of an array of model names;
        a model never judged gets the prior (0, 1 / prior_precision)."""
        index_of = {m: i for i, m in enumerate(self.models)}
        flat = [index_of.get(str(n), -1) for n in np.asarray(names, dtype=object).ravel()]
        idx = np.asarray(flat, dtype=np.int64).reshape(np.shape(names))
        theta = np.append(self.mean, 0.0)  # index -1 reads the appended prior entry
        var = np.append(np.diag(self.covariance), 1.0 / self.prior_precision)
        return theta[idx], var[idx], idx


def fit_source_strengths(
    winners: Sequence[str],
    losers: Sequence[str],
    *,
    prior_precision: float = 1.0,
    weights: Sequence[float] | None = None,
) -> SourceStrengths:
    """MAP Bradley-Terry strengths of the models in ``winners``/``losers`` and their Laplace
    covariance.

    Why: the judge's verdicts already rank the source models; a rule should not have to relearn
    that from text features (module docstring). Pairs of a model with itself carry no
    information about strengths and are ignored. Deterministic: same pairs, same numbers.
    """
    if len(winners) != len(losers):
        raise SourceStrengthError(
            f"got {len(winners)} winners but {len(losers)} losers: they must pair up"
        )
    if not (prior_precision > 0 and np.isfinite(prior_precision)):
        raise SourceStrengthError(f"prior_precision must be > 0, got {prior_precision}")
    w = np.ones(len(winners)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(winners),) or not np.isfinite(w).all() or (w < 0).any():
        raise SourceStrengthError("weights must be one finite, non-negative number per pair")
    keep = [k for k in range(len(winners)) if winners[k] != losers[k]]
    models = tuple(sorted({str(winners[k]) for k in keep} | {str(losers[k]) for k in keep}))
    m = len(models)
    if m == 0:
        return SourceStrengths((), np.zeros(0), np.zeros((0, 0)), float(prior_precision))
    index_of = {name: i for i, name in enumerate(models)}
    a = np.array([index_of[str(winners[k])] for k in keep], dtype=np.int64)
    b = np.array([index_of[str(losers[k])] for k in keep], dtype=np.int64)
    wk = w[keep]
    theta = np.zeros(m)
    for _ in range(NEWTON_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))  # P(winner beats loser)
        resid = wk * (1.0 - p)
        grad = -prior_precision * theta
        np.add.at(grad, a, resid)
        np.add.at(grad, b, -resid)
        curv = wk * p * (1.0 - p)
        hessian = prior_precision * np.eye(m)
        np.add.at(hessian, (a, a), curv)
        np.add.at(hessian, (b, b), curv)
        np.add.at(hessian, (a, b), -curv)
        np.add.at(hessian, (b, a), -curv)
        step = np.linalg.solve(hessian, grad)
        theta = theta + step
        if np.abs(step).max() < NEWTON_TOLERANCE:
            break
    covariance = np.linalg.inv(hessian)
    return SourceStrengths(models, theta, (covariance + covariance.T) / 2, float(prior_precision))


def with_source_strengths(
    scores: RewardScores,
    models: np.ndarray,
    mask: np.ndarray,
    strengths: SourceStrengths,
    *,
    weight: float,
    seed: int,
) -> RewardScores:
    """The head's estimates plus the source models' strengths, for the acquisition rule.

    mean + weight * theta_m, std = sqrt(std^2 + weight^2 var_m), and each of the S member samples
    gets one joint draw of theta from the Laplace posterior (seeded), shared by every prompt, so
    Thompson-style rules sample a coherent ranking of the models. Padded slots are untouched.
    """
    names = np.asarray(models, dtype=object)
    valid = np.asarray(mask, dtype=bool)
    if names.shape != valid.shape or valid.shape != scores.mean.shape:
        raise SourceStrengthError(
            f"models {names.shape}, mask {valid.shape} and reward means {scores.mean.shape} "
            "must have the same (prompts, responses) shape"
        )
    theta, var, idx = strengths.lookup(names)
    theta = np.where(valid, theta, 0.0)
    var = np.where(valid, var, 0.0)
    mean = scores.mean + weight * theta
    std = np.sqrt(scores.std**2 + weight**2 * var)
    samples = scores.samples
    if samples is not None and samples.ndim == 3 and samples.shape[:2] == mean.shape:
        rng = np.random.default_rng(seed)
        s = samples.shape[2]
        m = len(strengths.models)
        draws = np.zeros((m, s))
        if m:
            chol = np.linalg.cholesky(strengths.covariance + 1e-12 * np.eye(m))
            draws = strengths.mean[:, None] + chol @ rng.standard_normal((m, s))
        # unseen models: independent prior draws, one per (response, sample)
        unseen = rng.standard_normal(samples.shape) / np.sqrt(strengths.prior_precision)
        per = np.where((idx >= 0)[..., None], draws[np.maximum(idx, 0)] if m else 0.0, unseen)
        samples = samples + weight * np.where(valid[..., None], per, 0.0)
    return replace(scores, mean=mean, std=std, samples=samples)


__all__ = [
    "SourceStrengthError",
    "SourceStrengths",
    "fit_source_strengths",
    "with_source_strengths",
]
