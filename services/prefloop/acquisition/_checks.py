"""Input and parameter checks shared by the ActiveUltraFeedback-family rules.

Every rule validates what it reads before it computes anything, so a NaN reward, a negative
std, a misshapen array or a nonsense parameter fails loudly with the rule's name, the array and
the prompt row at fault, instead of silently producing a wrong pair (a NaN wins or loses every
``argmax`` depending on numpy's mood). The arrays returned here have padded slots replaced by
zeros, so later arithmetic never sees NaN; the mask, not the value, keeps padding out of play.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput


def describe_rows(rows: np.ndarray, limit: int = 5) -> str:
    """Render prompt row numbers for an error: ``rows [3, 7]`` or ``rows [...] (and 9 more)``."""
    listed = [int(r) for r in rows[:limit]]
    more = len(rows) - len(listed)
    word = "row" if len(rows) == 1 else "rows"
    tail = f" (and {more} more)" if more > 0 else ""
    return f"prompt {word} {listed}{tail}"


def checked_mask(inputs: AcquisitionInput, rule: str) -> np.ndarray:
    """The (P, N) boolean mask, after checking it is two-dimensional."""
    mask = np.asarray(inputs.mask)
    if mask.ndim != 2:
        raise AcquisitionError(f"{rule}: mask must be (P, N), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def checked_values(values: Any, mask: np.ndarray, rule: str, name: str) -> np.ndarray:
    """A (P, N) float array that must be finite on every real response; padding becomes 0."""
    if values is None:
        raise AcquisitionError(f"{rule}: inputs.{name} is missing")
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != mask.shape:
        raise AcquisitionError(
            f"{rule}: inputs.{name} has shape {arr.shape}, expected {mask.shape} like the mask"
        )
    bad = mask & ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise AcquisitionError(
            f"{rule}: inputs.{name} is NaN or infinite for a real response in {describe_rows(rows)}"
        )
    return np.where(mask, arr, 0.0)


def checked_mean_std(inputs: AcquisitionInput, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """The reward model's mean and std as clean (P, N) arrays; the std must be >= 0."""
    mask = checked_mask(inputs, rule)
    mean = checked_values(inputs.mean, mask, rule, "mean")
    std = checked_values(inputs.std, mask, rule, "std")
    negative = mask & (std < 0)
    if negative.any():
        rows = np.flatnonzero(negative.any(axis=1))
        raise AcquisitionError(f"{rule}: inputs.std is negative in {describe_rows(rows)}")
    return mean, std


def checked_pairs_per_prompt(value: Any, rule: str) -> int:
    """``pairs_per_prompt`` must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise AcquisitionError(f"{rule}: pairs_per_prompt must be an integer >= 1, got {value!r}")
    return int(value)


def checked_nonnegative(value: Any, rule: str, name: str) -> float:
    """A finite float parameter that must be >= 0 (beta, tolerances, buffers)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AcquisitionError(f"{rule}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise AcquisitionError(f"{rule}: {name} must be finite and >= 0, got {value!r}")
    return number


def checked_count(value: Any, rule: str, name: str) -> int:
    """A non-negative integer parameter (retry budgets)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise AcquisitionError(f"{rule}: {name} must be an integer >= 0, got {value!r}")
    return int(value)


def checked_choice(value: Any, rule: str, name: str, allowed: tuple[str, ...]) -> str:
    """A string parameter restricted to a few literal values."""
    if value not in allowed:
        raise AcquisitionError(f"{rule}: {name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def checked_confidence_inputs(
    inputs: AcquisitionInput, rule: str, beta: Any, pairs_per_prompt: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
    """``(mask, mean, std, k, beta)`` of a rule that ranks pairs by ``mu +- beta sigma`` bounds.

    Why: DeltaUCB, DeltaQuantile, InfoMax, InfoGain, MaxMinLCB and the Thompson rules all read
    the same inputs and parameters (https://arxiv.org/abs/2603.09692); checking them in one place
    and in one order keeps their error messages alike.
    """
    mask = checked_mask(inputs, rule)
    mean, std = checked_mean_std(inputs, rule)
    k = checked_pairs_per_prompt(pairs_per_prompt, rule)
    return mask, mean, std, k, checked_nonnegative(beta, rule, "beta")
