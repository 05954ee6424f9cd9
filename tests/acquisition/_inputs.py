"""Builders of ``AcquisitionInput`` batches for the acquisition tests.

``make_inputs`` turns small hand-written lists into a batch (the constructed cases that pin a
rule's defining property); ``random_inputs`` draws a seeded random batch with ragged masks,
padding at random positions and NaN in padded slots (the property and scale tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefloop.acquisition import AcquisitionInput


def model_names(n: int) -> tuple[str, ...]:
    """``n`` distinct model names, ``m0`` (strongest by convention) to ``m{n-1}``."""
    return tuple(f"m{j}" for j in range(n))


def make_inputs(
    mean: Sequence[Sequence[float]],
    std: Sequence[Sequence[float]] | None = None,
    mask: Sequence[Sequence[bool]] | None = None,
    judge_scores: Sequence[Sequence[float]] | None = None,
    models: Sequence[Sequence[str]] | None = None,
) -> AcquisitionInput:
    """A batch from nested lists; std defaults to zeros and mask to all True."""
    mean_arr = np.asarray(mean, dtype=np.float64)
    std_arr = np.zeros_like(mean_arr) if std is None else np.asarray(std, dtype=np.float64)
    mask_arr = np.ones(mean_arr.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    judge = None if judge_scores is None else np.asarray(judge_scores, dtype=np.float64)
    names = None if models is None else np.asarray(models, dtype=object)
    return AcquisitionInput(
        mean=mean_arr, std=std_arr, mask=mask_arr, judge_scores=judge, models=names
    )


def random_mask(
    rng: np.random.Generator, prompts: int, slots: int, min_valid: int = 2
) -> np.ndarray:
    """(P, N) mask with between ``min_valid`` and N real responses per prompt, scattered."""
    counts = rng.integers(min_valid, slots + 1, size=prompts)
    keys = rng.random((prompts, slots))
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    return ranks < counts[:, None]


def random_inputs(
    rng: np.random.Generator,
    prompts: int,
    slots: int,
    *,
    min_valid: int = 2,
    ragged: bool = True,
    ties: bool = False,
) -> AcquisitionInput:
    """A random batch: NaN in padded slots, judge scores, distinct model names per prompt.

    With ``ties`` the means, stds and judge scores are drawn from a few levels so that ties
    (and the tie-breaking code paths) are common.
    """
    mask = (
        random_mask(rng, prompts, slots, min_valid) if ragged else np.ones((prompts, slots), bool)
    )
    if ties:
        mean = rng.integers(0, 3, size=(prompts, slots)).astype(np.float64)
        std = rng.integers(0, 2, size=(prompts, slots)).astype(np.float64)
        judge = rng.integers(0, 2, size=(prompts, slots)).astype(np.float64)
    else:
        mean = rng.normal(size=(prompts, slots))
        std = rng.random((prompts, slots))
        judge = rng.random((prompts, slots))
    names = np.empty((prompts, slots), dtype=object)
    names[:] = np.asarray(model_names(slots), dtype=object)[None, :]
    for arr in (mean, std, judge):
        arr[~mask] = np.nan
    names[~mask] = ""
    return AcquisitionInput(mean=mean, std=std, mask=mask, judge_scores=judge, models=names)


def required_params(rule: str, slots: int) -> dict[str, object]:
    """Extra parameters a rule needs on ``random_inputs`` batches (DeltaQwen's model ranking)."""
    if rule == "delta_qwen":
        return {"model_ranking": model_names(slots)}
    return {}


AUF_RULES: tuple[str, ...] = (
    "random",
    "ultrafeedback",
    "maxmin",
    "delta_qwen",
    "dts",
    "drts",
    "delta_ucb",
    "infomax",
    "maxmin_lcb",
    "infogain",
    "delta_quantile",
)
"""The ActiveUltraFeedback-family per-prompt rules."""
