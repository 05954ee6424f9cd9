"""From two responses' scores to a label: the decision rule every pointwise judge shares.

The stored-score oracle, the rubric judge (overall UltraFeedback rating) and the reward-model
judge all score each response on its own and then decide the pair the same way:

- ``deterministic``: the higher score wins, as ActiveUltraFeedback's ``UltraFeedbackOracle``
  does; scores within ``tie_margin`` of each other are a tie, resolved by ``tie_policy``
  (``first``: the first response in canonical order wins; ``random``: a coin seeded by the run
  seed and the pair id);
- ``bradley_terry``: the label is drawn with ``P(a > b) = sigmoid((T(s_a) - T(s_b)) / T°)``
  from a generator seeded by the run seed and the pair id (see
  :func:`~prefloop.judge.oracle.bradley_terry_probability`).

Decisions are made for the canonical orientation of the pair (responses ordered by
:func:`~prefloop.judge.base.response_key`), so a label never depends on which response the
acquisition rule put first, nor on batching or retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from prefloop.data.records import stable_id
from prefloop.judge.base import JudgeRequest, response_key

OracleMode = Literal["deterministic", "bradley_terry"]
TiePolicy = Literal["first", "random"]
ScoreTransform = Literal["logit", "identity"]


def pair_generator(seed: int, pair_id: str) -> np.random.Generator:
    """A generator determined by the run seed and the (order-free) pair id only.

    Why: the label of a pair must be the same whichever batch it arrives in, and whether or not
    the call is retried (see :mod:`prefloop.judge.base`).
    """
    return np.random.default_rng([seed, int(stable_id("judge-oracle", pair_id), 16)])


def bradley_terry_probability(
    score_a: np.ndarray | float,
    score_b: np.ndarray | float,
    *,
    temperature: float = 1.0,
    transform: ScoreTransform = "logit",
    clip: float = 1e-4,
) -> np.ndarray:
    """P(a beats b) under Bradley-Terry on transformed scores, vectorised.

    Why: the probability the simulated judge prefers ``a``; with ``transform="logit"`` and
    win probabilities against a common reference, ``sigmoid(logit(s_a) - logit(s_b))`` is the
    Bradley-Terry model implied by the shared anchor (https://doi.org/10.2307/2334029).
    """
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    if transform == "logit":
        a = np.clip(a, clip, 1.0 - clip)
        b = np.clip(b, clip, 1.0 - clip)
        diff = (np.log(a) - np.log1p(-a)) - (np.log(b) - np.log1p(-b))
    else:
        diff = a - b
    z = diff / temperature
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


@dataclass(frozen=True)
class ScoreDecision:
    """How two scores become a label (see module doc)."""

    mode: OracleMode = "deterministic"
    tie_policy: TiePolicy = "first"
    temperature: float = 1.0
    score_transform: ScoreTransform = "identity"
    clip: float = 1e-4
    tie_margin: float = 0.0
    seed: int = 0

    def decide(
        self, request: JudgeRequest, score_a: float, score_b: float
    ) -> tuple[int, float, bool]:
        """``(winner, probability_a, tie)`` of a request whose responses scored ``score_a`` and
        ``score_b``: winner 0 is ``a``."""
        a_is_first = response_key(request.a) <= response_key(request.b)
        first, second = (score_a, score_b) if a_is_first else (score_b, score_a)
        tie = abs(first - second) <= self.tie_margin
        if self.mode == "deterministic":
            if not tie:
                first_wins = first > second
                probability_first = 1.0 if first_wins else 0.0
            else:
                probability_first = 0.5
                first_wins = self.tie_policy == "first" or self.coin(request.pair_id)
        else:
            probability_first = float(
                bradley_terry_probability(
                    first,
                    second,
                    temperature=self.temperature,
                    transform=self.score_transform,
                    clip=self.clip,
                )
            )
            draw = pair_generator(self.seed, request.pair_id).random()
            first_wins = bool(draw < probability_first)
        a_wins = first_wins == a_is_first
        probability_a = probability_first if a_is_first else 1.0 - probability_first
        return (0 if a_wins else 1), probability_a, tie

    def coin(self, pair_id: str) -> bool:
        """The seeded fair coin of a tie: True when the canonical first response wins."""
        return bool(pair_generator(self.seed, pair_id).random() < 0.5)

    def tie_winner(self, request: JudgeRequest) -> int:
        """The winner of a tie under ``tie_policy``, as 0 (``a``) or 1 (``b``)."""
        a_is_first = response_key(request.a) <= response_key(request.b)
        first_wins = self.tie_policy == "first" or self.coin(request.pair_id)
        return 0 if first_wins == a_is_first else 1
