"""The anchor-strength schedule lambda_t of the anchored ensemble.

Anchoring each head to its random initialisation keeps the ensemble diverse while labels are
few; as data accumulates the anchor is relaxed. ActiveUltraFeedback sets, before every training
round (spec ``activeuf.md`` section 2, https://arxiv.org/abs/2603.09692)::

    exponential: lambda_t = initial * base ** (scaler * n_done / n_total)
    linear:      lambda_t = initial * (1 - n_done / n_total)
    constant:    lambda_t = initial

with n_done = prompts processed so far (capped at n_total) and n_total = prompts in the run, so
the exponent covers 0..scaler over one pass whatever the data size. The paper's final runs use
initial 1.0, scaler 4308 and base 0.999 (lambda ends at 0.999**4308 = 0.0134) or 0.99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

AnchorDecay = Literal["exponential", "linear", "constant"]


class AnchorScheduleError(ValueError):
    """A schedule parameter or a progress count is out of range."""


@dataclass(frozen=True)
class AnchorSchedule:
    """lambda_t as a function of the loop's progress (n_done of n_total prompts)."""

    initial: float = 1.0
    decay: AnchorDecay = "exponential"
    base: float = 0.999
    scaler: float = 4308.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.initial) or self.initial < 0:
            raise AnchorScheduleError(f"initial must be finite and >= 0, got {self.initial}")
        if self.decay not in ("exponential", "linear", "constant"):
            raise AnchorScheduleError(
                f"decay must be 'exponential', 'linear' or 'constant', got {self.decay!r}"
            )
        if not 0 < self.base <= 1:
            raise AnchorScheduleError(f"base must be in (0, 1], got {self.base}")
        if not math.isfinite(self.scaler) or self.scaler < 0:
            raise AnchorScheduleError(f"scaler must be finite and >= 0, got {self.scaler}")

    def value(self, n_done: int, n_total: int) -> float:
        """lambda_t after ``n_done`` of ``n_total`` prompts (n_done is capped at n_total).

        Why: one function of progress gives the same anchor in a fresh run and after a resume,
        and the same curve shape whatever the data-set size.
        """
        if n_total < 1:
            raise AnchorScheduleError(f"n_total must be >= 1, got {n_total}")
        if n_done < 0:
            raise AnchorScheduleError(f"n_done must be >= 0, got {n_done}")
        fraction = min(n_done, n_total) / n_total
        if self.decay == "exponential":
            return float(self.initial * self.base ** (self.scaler * fraction))
        if self.decay == "linear":
            return float(self.initial * (1.0 - fraction))
        return float(self.initial)
