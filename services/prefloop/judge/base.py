"""The judge contract: given a prompt and two responses, say which is better.

Live judges (an LLM with a rubric, a human queue) and the stored-score oracle of the research
setting implement the same ``Judge`` protocol. A judgement is a label plus everything a user may
want to keep: the probability the first response wins, per-response scores, whether it was a tie,
and a rationale. Judges are deterministic given the run's seed and the pair id, so a retried call
returns the same label (the engine still never asks twice for the same pair).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from prefloop.data.records import PromptItem, Response, stable_id


def response_key(response: Response) -> str:
    """The stable id of a response (model and text): what orders a pair canonically.

    Why: a judge that draws randomness must draw it for the unordered pair, so the label cannot
    depend on which response the acquisition rule happened to put first; ordering the two
    responses by this key gives every pair one canonical orientation.
    """
    return stable_id(response.model, response.text)


class JudgeError(RuntimeError):
    """A judgement could not be produced (unparseable reply, missing score, ...)."""


@dataclass(frozen=True)
class JudgeRequest:
    """One comparison to make: responses ``a`` and ``b`` to ``item``'s prompt."""

    pair_id: str
    item: PromptItem
    a: Response
    b: Response


@dataclass(frozen=True)
class Judgement:
    """The judge's verdict on one request.

    Attributes:
        pair_id: the request's id.
        winner: 0 if ``a`` is preferred, 1 if ``b`` is.
        probability_a: the judge's probability that ``a`` is better (1.0/0.0 when hard).
        score_a / score_b: per-response scores if the judge gives them.
        tie: the judge could not separate the two; ``winner`` then follows the tie policy.
        rationale: free text explaining the verdict, if any.
        aspects: per-aspect scores (helpfulness, honesty, ...), if any.
    """

    pair_id: str
    winner: int
    probability_a: float
    score_a: float | None = None
    score_b: float | None = None
    tie: bool = False
    rationale: str | None = None
    aspects: dict[str, float] = field(default_factory=dict)


class Judge(Protocol):
    """Anything that labels pairs: oracle, LLM-as-judge, human queue."""

    name: str

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order."""
        ...
