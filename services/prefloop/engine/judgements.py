"""How the engine stores a judge's verdicts and failures, and rebuilds requests from them.

A verdict is kept order-free in the run state (``RunState.judged``: who won by response key, with
what probability, each response's score), so a pair is never judged twice, also after a resume;
a pair the judge could not label is kept with everything needed to ask again
(``RunState.judge_failures``). Split from ``round_engine.py``, which drives the rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from prefloop.data.records import PromptItem, Response
from prefloop.judge.base import Judgement, JudgeRequest, response_key


@dataclass
class JudgeRetry:
    """Recorded failures asked again: their requests, response indices and failure records."""

    requests: list[JudgeRequest] = field(default_factory=list)
    indices: dict[str, tuple[int, int]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def judgement_record(req: JudgeRequest, j: Judgement) -> dict[str, Any]:
    """A judgement stored order-free: who won (by response key), with what probability, and
    each response's judge score by response key."""
    if j.pair_id != req.pair_id:
        raise RuntimeError(f"judge answered pair {j.pair_id} for request {req.pair_id}")
    winner = req.a if j.winner == 0 else req.b
    p_a = float(j.probability_a)
    scores = {
        response_key(r): float(s)
        for r, s in ((req.a, j.score_a), (req.b, j.score_b))
        if s is not None and math.isfinite(s)
    }
    return {
        "winner_key": response_key(winner),
        "probability_winner": p_a if j.winner == 0 else 1.0 - p_a,
        "score_a": j.score_a,
        "score_b": j.score_b,
        "scores": scores,
        "tie": bool(j.tie),
        "rationale": j.rationale,
    }


def with_judge_score(response: Response, scores: dict[str, float]) -> Response:
    """The response with the live judge's score when it has no stored one (so the data set's
    ``chosen_score`` / ``rejected_score`` carry the judge's ratings)."""
    if response.score is not None:
        return response
    score = scores.get(response_key(response))
    return response if score is None else replace(response, score=score)


def failure_record(
    req: JudgeRequest, verdict: Judgement, i: int, j: int, round_index: int, rule: str
) -> dict[str, Any]:
    """What it takes to ask about a failed pair again: the request, why it failed, where from."""
    item = req.item
    return {
        "round": round_index,
        "reason": verdict.failure,
        "acquisition": rule,
        "prompt_id": item.prompt_id,
        "prompt": item.prompt if isinstance(item.prompt, str) else [dict(m) for m in item.prompt],
        "source": item.source,
        "a": {"model": req.a.model, "text": req.a.text, "score": req.a.score, "index": i},
        "b": {"model": req.b.model, "text": req.b.text, "score": req.b.score, "index": j},
    }


def request_of_failure(pid: str, record: dict[str, Any]) -> tuple[JudgeRequest, int, int]:
    """The request (and the two response indices) of a recorded failure."""
    prompt = record["prompt"]
    item = PromptItem(
        record["prompt_id"],
        prompt if isinstance(prompt, str) else tuple(dict(m) for m in prompt),
        source=record.get("source", ""),
    )
    a, b = (Response(r["model"], r["text"], r.get("score")) for r in (record["a"], record["b"]))
    return JudgeRequest(pid, item, a, b), int(record["a"]["index"]), int(record["b"]["index"])
