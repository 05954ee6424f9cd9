"""The stored-score oracle: the judge of the research setting, replaying precomputed scores.

When every response already carries a judge score (AlpacaEval's GPT-4-turbo win probabilities,
UltraFeedback-style 1-5 ratings, or 1/0 for an offline chosen/rejected pair), labelling a pair
costs nothing and an active-learning method can be evaluated by how good the pairs it chooses
are. Two oracles are offered:

- ``deterministic``: the higher stored score wins, as ActiveUltraFeedback's
  ``UltraFeedbackOracle`` does (https://arxiv.org/abs/2603.09692, code
  ``activeuf/oracle/oracles.py``). Equal scores (or within ``tie_margin``) are a tie, resolved by
  ``tie_policy``: ``"first"`` lets the first response *in canonical order* win, ``"random"``
  flips a seeded coin.
- ``bradley_terry``: a noisy judge, ``P(a > b) = sigmoid((T(s_a) - T(s_b)) / temperature)``
  (Bradley & Terry 1952, https://doi.org/10.2307/2334029). For [0, 1] scores that are each a win
  probability against one shared reference (AlpacaEval), ``T = logit`` of the clipped score makes
  this exactly the Bradley-Terry probability through the shared anchor; ``T = identity`` suits
  rating scales such as 1-5.

A label never depends on presentation order. The oracle orders the two responses canonically
(by :func:`~prefloop.judge.base.response_key`, the stable id of model and text) before deciding:
the Bradley-Terry draw ``u < P(canonical first wins)`` and the tie coin are drawn for the
canonical orientation with a generator seeded from ``(seed, pair_id)``, and ``pair_id`` must
name the unordered pair (the engine's pair id does: it sorts the two response keys). So a pair
gets the same winner whichever rule picked it, in whichever order, in whichever batch.

``tie_policy: first`` departs from ActiveUltraFeedback on purpose: there a tie keeps the
acquisition order (the rule's first pick wins), which makes the winner of a tied pair depend on
presentation order; here "first" is the first response in canonical order, a fixed, seed-free
and order-free choice. Ties are flagged (``tie=True``) either way, so a consumer can drop them.
"""

from __future__ import annotations

import math
from typing import get_args

from prefloop.data.records import Response
from prefloop.judge.base import JudgeError, Judgement, JudgeRequest
from prefloop.judge.decision import (
    OracleMode,
    ScoreDecision,
    ScoreTransform,
    TiePolicy,
    bradley_terry_probability,
    pair_generator,
)

__all__ = ["StoredScoreOracle", "bradley_terry_probability", "check_choice", "pair_generator"]


class StoredScoreOracle:
    """A :class:`~prefloop.judge.base.Judge` that compares the responses' stored scores.

    Args:
        mode: ``"deterministic"`` (higher score wins) or ``"bradley_terry"`` (sampled label).
        tie_policy: how a deterministic tie (equal scores) is resolved: ``"first"``: the first
            response in canonical order (smaller :func:`response_key`) wins; ``"random"``: a fair
            coin seeded by ``(seed, pair_id)`` for the canonical orientation. Neither depends on
            which response is ``a``. In ``bradley_terry`` mode equal scores give probability 0.5
            and the sampled label is already that coin, so the policy is not consulted.
        temperature: Bradley-Terry temperature (> 0); larger is noisier.
        score_transform: ``"logit"`` for [0, 1] win-probability scores (clipped to
            ``[clip, 1 - clip]``), ``"identity"`` for other scales such as 1-5 ratings.
        clip: clipping of [0, 1] scores before the logit, in (0, 0.5).
        tie_margin: scores at most this far apart are a tie (0: only equal scores).
        seed: the run seed (>= 0).
        name: recorded as the ``judge`` of every pair.
    """

    def __init__(
        self,
        *,
        mode: OracleMode = "deterministic",
        tie_policy: TiePolicy = "first",
        temperature: float = 1.0,
        score_transform: ScoreTransform = "logit",
        clip: float = 1e-4,
        tie_margin: float = 0.0,
        seed: int = 0,
        name: str = "stored-score-oracle",
    ) -> None:
        check_choice("mode", mode, OracleMode)
        check_choice("tie_policy", tie_policy, TiePolicy)
        check_choice("score_transform", score_transform, ScoreTransform)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError(f"temperature must be a number, got {temperature!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 < clip < 0.5:
            raise ValueError(f"clip must be a number in (0, 0.5), got {clip!r}")
        if isinstance(tie_margin, bool) or not isinstance(tie_margin, int | float):
            raise ValueError(f"tie_margin must be a number >= 0, got {tie_margin!r}")
        if not (math.isfinite(tie_margin) and tie_margin >= 0):
            raise ValueError(f"tie_margin must be a finite number >= 0, got {tie_margin!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.mode: OracleMode = mode
        self.tie_policy: TiePolicy = tie_policy
        self.temperature = float(temperature)
        self.score_transform: ScoreTransform = score_transform
        self.clip = float(clip)
        self.seed = seed
        self.name = name
        self.decision = ScoreDecision(
            mode=mode,
            tie_policy=tie_policy,
            temperature=self.temperature,
            score_transform=score_transform,
            clip=self.clip,
            tie_margin=float(tie_margin),
            seed=seed,
        )

    def __repr__(self) -> str:
        return (
            f"StoredScoreOracle(mode={self.mode!r}, tie_policy={self.tie_policy!r}, "
            f"temperature={self.temperature}, score_transform={self.score_transform!r}, "
            f"clip={self.clip}, seed={self.seed}, name={self.name!r})"
        )

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order; each depends only on the request and the seed.

        Raises:
            JudgeError: a response has no stored score (None or NaN), or, with the logit
                transform, a score outside [0, 1].
        """
        return [self._judge_one(request) for request in requests]

    def _score(self, request: JudgeRequest, response: Response, side: str) -> float:
        where = (
            f"pair {request.pair_id!r}, prompt {request.item.prompt_id!r}, "
            f"response {side} by model {response.model!r}"
        )
        score = response.score
        if score is None:
            raise JudgeError(
                f"{where} has no stored score; the stored-score oracle needs a score on every "
                "response (use a live judge for unscored responses)"
            )
        value = float(score)
        if math.isnan(value):
            raise JudgeError(f"{where} has a NaN score; the stored-score oracle needs a number")
        if not math.isfinite(value):
            raise JudgeError(f"{where} has a non-finite score {value}")
        if self.score_transform == "logit" and not 0.0 <= value <= 1.0:
            raise JudgeError(
                f"{where} has score {value} outside [0, 1], which the logit transform needs; "
                "use score_transform='identity' for rating scales such as 1-5"
            )
        return value

    def _judge_one(self, request: JudgeRequest) -> Judgement:
        score_a = self._score(request, request.a, "a")
        score_b = self._score(request, request.b, "b")
        winner, probability_a, tie = self.decision.decide(request, score_a, score_b)
        return Judgement(
            pair_id=request.pair_id,
            winner=winner,
            probability_a=probability_a,
            score_a=score_a,
            score_b=score_b,
            tie=tie,
        )


def check_choice(name: str, value: object, choices: object) -> None:
    """Refuse a value that is not one of a ``Literal``'s choices, naming the parameter."""
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
