"""Ask an LLM judge's questions once: cache lookups, chunked calls, cost per pair.

A live judge turns a batch of pairs into *asks*, one per model request (the rubric judge: one
per aspect of each response; the pairwise judge: one per order of each pair). :func:`run_asks`
answers every ask, in this order of preference:

1. from the :class:`~prefloop.judge.cache.JudgementCache` (a cache hit, free);
2. from an identical ask earlier in the same batch (two pairs sharing a response share its
   ratings; also a cache hit);
3. by the LLM, all at once (the backend keeps ``llm.chunk_size`` in flight); accepted answers
   are put in the cache every ``llm.chunk_size`` outcomes, as they arrive, so a crash loses at
   most the answers of one unstored chunk and the requests in flight.

Every ask belongs to the request (pair) that first needed it, and that request's
:class:`~prefloop.judge.base.JudgeUsage` carries what its asks cost: calls, failed calls, tokens,
seconds, money and cache hits. A failed ask (the backend's retries ran out, or the reply could
not be read) is not cached; the pairs that need it fail and are asked again later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefloop.judge.base import JudgeUsage
from prefloop.judge.cache import JudgementCache
from prefloop.judge.llm_backends import (
    Conversation,
    JudgeCallFailure,
    JudgeLLM,
    JudgeOutcome,
    JudgeReply,
)
from prefloop.judge.ratings import LabelReading, read_labels, reply_problem

REPLY_CHARS = 1000
"""How much of a reply's text is kept with its answer (for the rationale)."""


@dataclass(frozen=True)
class Ask:
    """One model request a judge needs: its cache key, the conversation, the pair that needs it."""

    key: str
    conversation: Conversation
    owner: int


@dataclass
class AskResults:
    """The answers (``{"probabilities", "source", "text"}`` per key), the failures (reason per
    key) and what each owner's asks cost."""

    answers: dict[str, dict[str, Any]]
    failures: dict[str, str]
    usage: dict[int, JudgeUsage]


def reading_of(answer: dict[str, Any]) -> LabelReading:
    """The label reading stored in an answer (from the cache or a fresh reply)."""
    return LabelReading(tuple(float(p) for p in answer["probabilities"]), answer["source"])


def run_asks(
    llm: JudgeLLM,
    cache: JudgementCache,
    asks: Sequence[Ask],
    *,
    labels: Sequence[str],
    seed: int,
) -> AskResults:
    """Answer every ask (see module doc); never raises for a failed request."""
    usage: dict[int, JudgeUsage] = defaultdict(JudgeUsage)
    answers: dict[str, dict[str, Any]] = {}
    todo: dict[str, Ask] = {}
    for ask in asks:
        cached = cache.get(ask.key)
        if cached is not None:
            answers[ask.key] = cached
            usage[ask.owner] += JudgeUsage(cache_hits=1)
        elif ask.key in todo:
            usage[ask.owner] += JudgeUsage(cache_hits=1)
        else:
            todo[ask.key] = ask
    failures: dict[str, str] = {}
    pending = list(todo.values())

    def check(reply: JudgeReply) -> str | None:
        return reply_problem(reply.text, reply.first_top_logprobs, labels)

    fresh: dict[str, dict[str, Any]] = {}
    flush_every = max(1, llm.chunk_size)

    def store(index: int, outcome: JudgeOutcome) -> None:
        ask = pending[index]
        if isinstance(outcome, JudgeCallFailure):
            failures[ask.key] = f"{outcome.kind}: {outcome.message}"
            usage[ask.owner] += JudgeUsage(calls=1, failed_calls=1, seconds=outcome.seconds)
            return
        reading = read_labels(outcome.text, outcome.first_top_logprobs, labels)
        if reading is None:  # the backend accepted a reply its check refuses: a bug
            raise RuntimeError(f"{llm.identity} returned a reply its check refuses")
        answers[ask.key] = fresh[ask.key] = {
            "probabilities": list(reading.probabilities),
            "source": reading.source,
            "text": outcome.text[:REPLY_CHARS],
        }
        usage[ask.owner] += JudgeUsage(
            calls=1,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            seconds=outcome.seconds,
            cost=llm.cost(outcome.prompt_tokens, outcome.completion_tokens),
        )
        if len(fresh) >= flush_every:
            cache.put_many(dict(fresh))
            fresh.clear()

    if pending:
        llm.complete([a.conversation for a in pending], check=check, seed=seed, on_outcome=store)
    cache.put_many(fresh)
    for key, ask in todo.items():
        if key not in answers and key not in failures:  # pragma: no cover - defensive
            failures[key] = f"no answer for request of pair #{ask.owner}"
    return AskResults(answers, failures, dict(usage))
