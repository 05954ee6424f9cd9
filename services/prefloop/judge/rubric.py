"""The UltraFeedback four-aspect rubric judge: an LLM rates each response, the higher one wins.

As in ActiveUltraFeedback (https://arxiv.org/abs/2603.09692, ``get_raw_annotations.py`` and
``combine_annotated_completions.py``), each response is rated on its own, once per aspect
(instruction following, honesty, truthfulness, helpfulness; the rubric texts of
:mod:`prefloop.judge.rubric_prompts`), each aspect in its own request:

- aspect score = the expected rating ``sum_s s * p(s)`` over s = 1..5, with ``p`` the judge's
  first-token probabilities of the five digits renormalised over them
  (:mod:`prefloop.judge.ratings`); when the backend gives no log-probabilities, the rating the
  reply starts with (a strict format, retried within the client's bounded budget when absent);
- overall score = the mean of the aspect scores, in [1, 5];
- label = the shared decision rule (:class:`~prefloop.judge.decision.ScoreDecision`): the higher
  overall score wins (``deterministic``; within ``tie_margin`` a tie, resolved by the tie
  policy) or a seeded Bradley-Terry draw.

Ratings are per response, so a response in several pairs is rated once: every answer is cached
by (judge configuration, aspect, prompt, response) in a
:class:`~prefloop.judge.cache.JudgementCache`. A pair whose responses miss a rating after the
retries is returned as failed (``Judgement.failure``), never labelled.

The judgement carries both overall scores (``score_a``, ``score_b``), every aspect score as
``aspects["a.helpfulness"]`` and so on, and a rationale naming each response's model with its
ratings and how they were read.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefloop.judge.asks import Ask, reading_of, run_asks
from prefloop.judge.base import (
    NO_USAGE,
    Judgement,
    JudgeRequest,
    JudgeUsage,
    failed_judgement,
)
from prefloop.judge.cache import CachingJudge, JudgementCache, cache_key
from prefloop.judge.decision import ScoreDecision
from prefloop.judge.llm_backends import JudgeLLM
from prefloop.judge.rubric_prompts import ASPECTS, Aspect, rubric_messages

RATING_LABELS = ("1", "2", "3", "4", "5")
RATING_VALUES = (1.0, 2.0, 3.0, 4.0, 5.0)


class RubricJudge(CachingJudge):
    """A :class:`~prefloop.judge.base.Judge` rating responses with the UltraFeedback rubrics.

    Args:
        llm: the judge model (an endpoint or a local model).
        config_key: fingerprint of the judge configuration (keys the cache).
        seed: the run's judge seed (seeds sampled decoding and the tie coin).
        aspects: the aspects rated (default: all four, in ActiveUltraFeedback's order).
        decision: how two overall scores become a label.
        cache: where answers are kept (default: in memory only).
        name: recorded as the ``judge`` of every pair.
    """

    def __init__(
        self,
        *,
        llm: JudgeLLM,
        config_key: str,
        seed: int = 0,
        aspects: Sequence[Aspect] = ASPECTS,
        decision: ScoreDecision | None = None,
        cache: JudgementCache | None = None,
        name: str = "rubric",
    ) -> None:
        if not aspects or len(set(aspects)) != len(aspects):
            raise ValueError(f"aspects must be distinct and not empty, got {list(aspects)}")
        unknown = sorted(set(aspects) - set(ASPECTS))
        if unknown:
            raise ValueError(f"unknown aspect(s) {unknown}; known: {', '.join(ASPECTS)}")
        self.llm = llm
        super().__init__(
            config_key=config_key, seed=seed, decision=decision, cache=cache, name=name
        )
        self.aspects = tuple(aspects)

    def __repr__(self) -> str:
        return f"RubricJudge(llm={self.llm!r}, aspects={list(self.aspects)}, name={self.name!r})"

    def _key(self, aspect: str, prompt: str, completion: str) -> str:
        return cache_key(self.config_key, "rubric", aspect, prompt, completion)

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order; failed pairs carry ``failure``."""
        asks = []
        for owner, request in enumerate(requests):
            prompt = request.item.prompt_text()
            for response in (request.a, request.b):
                for aspect in self.aspects:
                    key = self._key(aspect, prompt, response.text)
                    conv = rubric_messages(aspect, prompt, response.text)
                    asks.append(Ask(key, conv, owner))
        results = run_asks(self.llm, self.cache, asks, labels=RATING_LABELS, seed=self.seed)
        out = []
        for owner, request in enumerate(requests):
            usage = results.usage.get(owner, NO_USAGE)
            prompt = request.item.prompt_text()
            ratings: dict[str, dict[str, float]] = {"a": {}, "b": {}}
            sources: set[str] = set()
            failure = None
            for side, response in (("a", request.a), ("b", request.b)):
                for aspect in self.aspects:
                    key = self._key(aspect, prompt, response.text)
                    if key in results.failures:
                        failure = (
                            f"pair {request.pair_id}: no {aspect} rating of model "
                            f"{response.model!r}'s response ({results.failures[key]})"
                        )
                        break
                    answer = results.answers[key]
                    ratings[side][aspect] = reading_of(answer).expected(RATING_VALUES)
                    sources.add(str(answer["source"]))
                if failure:
                    break
            if failure:
                out.append(failed_judgement(request.pair_id, failure, usage))
                continue
            out.append(self._verdict(request, ratings, sources, usage))
        return out

    def _verdict(
        self,
        request: JudgeRequest,
        ratings: dict[str, dict[str, float]],
        sources: set[str],
        usage: JudgeUsage,
    ) -> Judgement:
        overall = {side: sum(r.values()) / len(r) for side, r in ratings.items()}
        winner, probability_a, tie = self.decision.decide(request, overall["a"], overall["b"])
        aspects = {f"{side}.{a}": v for side, r in ratings.items() for a, v in r.items()}
        how = " and ".join(
            {"logprobs": "expected ratings from first-token log-probabilities"}.get(
                s, "ratings parsed from the reply"
            )
            for s in sorted(sources)
        )
        parts = [
            f"{response.model}: "
            + ", ".join(f"{a} {v:.2f}" for a, v in ratings[side].items())
            + f"; overall {overall[side]:.2f}"
            for side, response in (("a", request.a), ("b", request.b))
        ]
        return Judgement(
            pair_id=request.pair_id,
            winner=winner,
            probability_a=probability_a,
            score_a=overall["a"],
            score_b=overall["b"],
            tie=tie,
            rationale=f"UltraFeedback rubric ({how}). " + " | ".join(parts),
            aspects=aspects,
            usage=usage,
        )
