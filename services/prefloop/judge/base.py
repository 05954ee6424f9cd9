"""The judge contract: given a prompt and two responses, say which is better.

Live judges (an LLM with a rubric, a human queue) and the stored-score oracle of the research
setting implement the same ``Judge`` protocol. A judgement is a label plus everything a user may
want to keep: the probability the first response wins, per-response scores, whether it was a tie,
and a rationale. Judges are deterministic given the run's seed and the pair id, so a retried call
returns the same label (the engine still never asks twice for the same pair).

A live judge (an LLM behind an HTTP endpoint, a local model) can fail on some pairs after its
retries: it then returns a judgement with ``failure`` set (never a guessed label) and the engine
records the pair as failed instead of labelling it. Every judgement says what producing it cost
(:class:`JudgeUsage`: model calls, tokens, seconds, cache hits and a money estimate).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
class JudgeUsage:
    """What producing verdicts cost; zero for the stored-score oracle and for cached answers.

    Attributes:
        calls: model requests made (an HTTP request or a local forward pass; retries of one
            request count once), successful or not.
        failed_calls: of those, requests that produced no usable reply after their retries.
        prompt_tokens / completion_tokens: tokens read and written, as the backend reports them.
        seconds: wall seconds of the requests (summed over requests).
        cache_hits: answers taken from the judgement cache or the verdict log instead of a call.
        cost: money estimate from the endpoint's prices per million tokens (its currency).
    """

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cost: float = 0.0

    def __add__(self, other: JudgeUsage) -> JudgeUsage:
        return JudgeUsage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_dict(self) -> dict[str, float | int]:
        """The counts by field name (for logs, metrics and the verdict log)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


NO_USAGE = JudgeUsage()


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
        failure: why no verdict could be produced (the judge's retries ran out); ``winner`` and
            ``probability_a`` then mean nothing, and the pair must not be labelled.
        usage: what producing this verdict cost (see :class:`JudgeUsage`).
    """

    pair_id: str
    winner: int
    probability_a: float
    score_a: float | None = None
    score_b: float | None = None
    tie: bool = False
    rationale: str | None = None
    aspects: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    usage: JudgeUsage = NO_USAGE

    @property
    def failed(self) -> bool:
        """True when the judge produced no verdict for the pair."""
        return self.failure is not None


_SIDE_SWAP = {"a": "b", "b": "a", "ab": "ba", "ba": "ab"}


def swap_sides(aspects: dict[str, float]) -> dict[str, float]:
    """Per-aspect scores as seen with ``a`` and ``b`` exchanged.

    Why: aspect keys name sides (``a.helpfulness``; the pairwise judge's ``ab.a``, the order
    a-then-b and response a), and a verdict recorded for (a, b) may be returned for (b, a);
    every dot-separated part ``a``/``b``/``ab``/``ba`` is swapped.
    """
    return {
        ".".join(_SIDE_SWAP.get(part, part) for part in key.split(".")): value
        for key, value in aspects.items()
    }


def failed_judgement(pair_id: str, reason: str, usage: JudgeUsage = NO_USAGE) -> Judgement:
    """The judgement of a pair the judge could not label: no winner, the reason, the cost.

    Why one constructor: a failure must never look like a label (winner 0, probability 0.5 are
    placeholders that consumers check ``failed`` before reading).
    """
    return Judgement(pair_id, 0, 0.5, failure=reason, usage=usage)


class Judge(Protocol):
    """Anything that labels pairs: oracle, LLM-as-judge, human queue."""

    name: str

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order."""
        ...
