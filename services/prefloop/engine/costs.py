"""What a round cost: judge and generation calls, tokens in and out, seconds, cache hits, money.

Live judges and generation backends are paid per token (a hosted API) or per GPU-second (a
vLLM server); a run must say what it spent. Each round's metrics row gets, for the round:

- ``judge_calls``, ``judge_failed_calls``, ``judge_prompt_tokens``, ``judge_completion_tokens``,
  ``judge_request_seconds`` (summed over requests), ``judge_cache_hits`` (answers taken from the
  judgement cache or the verdict log instead of a call) and ``judge_cost``, all from the
  :class:`~prefloop.judge.base.JudgeUsage` of the round's verdicts (so they hold in service
  mode too, where the verdicts come over gRPC);
- ``generation_calls`` (responses generated plus failed (model, prompt) requests) and
  ``generation_cost``: each response's prompt and completion tokens (as its backend reported
  them) times its model's ``endpoint.pricePerMillionInputTokens`` /
  ``pricePerMillionOutputTokens`` (local models cost 0);
- ``cost``: the round's judge plus generation cost, and ``cost_total`` over the run so far.

Money is an estimate in the currency of the prices; token counts are the backends' own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefloop.data.records import PromptItem
from prefloop.judge.base import Judgement, JudgeUsage
from prefloop.judge.llm_backends import token_cost
from prefloop.spec import ActiveRun

JUDGE_USAGE_METRICS = {
    "calls": "judge_calls",
    "failed_calls": "judge_failed_calls",
    "prompt_tokens": "judge_prompt_tokens",
    "completion_tokens": "judge_completion_tokens",
    "seconds": "judge_request_seconds",
    "cache_hits": "judge_cache_hits",
    "cost": "judge_cost",
}
"""Metric name of each :class:`JudgeUsage` field."""


def judge_usage(verdicts: Iterable[Judgement]) -> dict[str, float]:
    """The judge metrics of a set of verdicts (see module doc)."""
    total = sum((v.usage for v in verdicts), JudgeUsage())
    return {JUDGE_USAGE_METRICS[k]: v for k, v in total.as_dict().items()}


def generation_cost(run: ActiveRun, items: Iterable[PromptItem]) -> dict[str, float]:
    """``generation_calls`` and ``generation_cost`` of a round's pool (0 for stored responses)."""
    if run.spec.responses.source != "models":
        return {"generation_calls": 0, "generation_cost": 0.0}
    endpoints = {m.name: getattr(m, "endpoint", None) for m in run.spec.responses.models}
    calls, cost = 0, 0.0
    for item in items:
        calls += len(item.generation_failures)
        for response in item.responses:
            if response.model not in endpoints:
                continue
            calls += 1
            cost += token_cost(
                endpoints[response.model],
                response.prompt_tokens or 0,
                response.completion_tokens or 0,
            )
    return {"generation_calls": calls, "generation_cost": cost}


def add_totals(totals: dict[str, float], round_metrics: dict[str, Any]) -> dict[str, float]:
    """Add a round's cost metrics to the run's totals (in place) and return ``cost``/``cost_total``.

    Why totals in the run state: a resumed run must keep counting from what was spent before.
    """
    for name in [*JUDGE_USAGE_METRICS.values(), "generation_calls", "generation_cost"]:
        totals[name] = totals.get(name, 0) + round_metrics.get(name, 0)
    for name in ("generation_prompt_tokens", "generation_completion_tokens"):
        totals[name] = totals.get(name, 0) + round_metrics.get(name, 0)
    cost = round_metrics.get("judge_cost", 0.0) + round_metrics.get("generation_cost", 0.0)
    return {"cost": cost, "cost_total": totals.get("judge_cost", 0.0) + totals["generation_cost"]}
