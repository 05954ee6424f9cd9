"""One round's metrics: the row of ``metrics.csv`` / ``metrics.jsonl`` the round engine records.

The round engine (:mod:`prefloop.engine.round_engine`) runs the five steps and hands what the
round produced to :func:`round_metrics` as one :class:`RoundFacts`; this module only turns those
facts into numbers: counts of selected, judged and kept pairs, the score gap and label agreement
of the selected pairs, generation and judge usage and cost (with the run's running totals), the
judge's own report (a human judge's votes and agreement), held-out evaluation, and seconds per
step. The key order is the column order of ``metrics.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prefloop.acquisition import Selection
from prefloop.data.records import PreferencePair, PromptItem
from prefloop.engine.checkpoint import RunState
from prefloop.engine.costs import add_totals, generation_cost, judge_usage
from prefloop.generation.base import generation_metrics
from prefloop.judge.base import Judgement
from prefloop.spec import ActiveRun


@dataclass(frozen=True)
class RoundFacts:
    """What one round produced, as its metrics need it (``state`` is already advanced)."""

    items: list[PromptItem]
    """The batch's prompts with their responses."""
    pairs: list[PreferencePair]
    """Every pair labelled this round (judged, self-labelled, carried from a resume)."""
    kept: list[PreferencePair]
    """The pairs that enter the dataset."""
    selection: Selection
    """The acquisition rule's selection, cut to the budget."""
    distinct: dict[str, Any]
    """Counts of responses with distinct texts (from the selection step)."""
    reward_seconds: dict[str, float]
    """The reward role's own timings."""
    train_metrics: dict[str, float]
    """The trainer's report (loss, steps, ...)."""
    verdicts: list[Judgement]
    """Every verdict the judge gave this round, failures included."""
    judge_failures_pending: int
    """Failed pairs recorded to be asked again."""
    annotations_before: int
    """Judge calls used before this round."""
    method: str
    """The acquisition rule that selected (``random`` in a warm-up round)."""
    warmup: bool
    """Whether this was the BGPM warm-up round."""
    evaluation: dict[str, float]
    """Held-out evaluation after training."""
    step_seconds: dict[str, float]
    """Wall time per step (generation, reward, publish, acquisition, judge, ...)."""


def round_metrics(
    run: ActiveRun, state: RunState, facts: RoundFacts, judge: object
) -> dict[str, Any]:
    """The round's metrics row; adds the round's usage to ``state.usage_totals``.

    Why one place: ``metrics.csv``, the learning curve, the summary, the driver's Prometheus
    gauges and the operator's status all read these keys.
    """
    metrics = _pair_metrics(state, facts)
    metrics.update(facts.distinct)
    metrics.update(generation_metrics(facts.items))
    metrics.update(judge_usage(facts.verdicts))
    metrics.update(generation_cost(run, facts.items))
    metrics.update(add_totals(state.usage_totals, metrics))
    metrics.update(judge_round_metrics(judge))
    metrics["judge_failures"] = sum(v.failed for v in facts.verdicts)
    metrics["judge_failures_pending"] = facts.judge_failures_pending
    metrics["annotations_this_round"] = state.annotations_used - facts.annotations_before
    metrics["pairs_this_round"] = len(facts.kept)
    metrics["acquisition_method"] = facts.method
    metrics["budget_truncated"] = int(facts.selection.info.get("budget_truncated", 0))
    metrics["warmup"] = facts.warmup
    metrics.update({f"heldout_{k}": v for k, v in facts.evaluation.items()})
    metrics.update({f"{k}_seconds": v for k, v in facts.step_seconds.items()})
    metrics["round_seconds"] = sum(facts.step_seconds.values())
    return metrics


def _pair_metrics(state: RunState, facts: RoundFacts) -> dict[str, Any]:
    """Counts and quality of the round's pairs: selected, judged, kept; score gap of the kept
    pairs, their chosen score, and how often the judge agreed with the stored scores."""
    pairs, kept = facts.pairs, facts.kept
    judged = [p for p in pairs if p.label_source == "judge"]
    gaps = [
        p.chosen.score - p.rejected.score
        for p in kept
        if p.chosen.score is not None and p.rejected.score is not None
    ]
    agree = [
        (p.chosen.score >= p.rejected.score)
        for p in judged
        if p.chosen.score is not None and p.rejected.score is not None
    ]
    chosen_scores = [p.chosen.score for p in kept if p.chosen.score is not None]
    m: dict[str, Any] = {
        "round": state.round,
        "prompts": len(facts.items),
        "prompts_done": state.prompt_offset,
        "pairs_selected": facts.selection.size,
        "pairs_judged": len(judged),
        "pairs_self_labelled": len(pairs) - len(judged),
        "pairs_in_dataset": len(kept),
        "annotations_used": state.annotations_used,
        "pairs_used": state.pairs_used,
        "model_version": state.model_version,
        "mean_score_gap": float(np.mean(gaps)) if gaps else float("nan"),
        "mean_chosen_score": float(np.mean(chosen_scores)) if chosen_scores else float("nan"),
        "label_agreement": float(np.mean(agree)) if agree else float("nan"),
        "ties": sum(p.tie for p in judged),
    }
    m.update({k: float(v) for k, v in facts.reward_seconds.items()})
    m.update(
        {
            f"train_{k}" if not k.startswith("train") else k: v
            for k, v in facts.train_metrics.items()
        }
    )
    return m


def judge_round_metrics(judge: object) -> dict[str, Any]:
    """Round metrics a judge reports about itself (the human judge: votes, carried and dropped
    pairs, Cohen's/Fleiss' kappa, left-position share), whether it is the role or wrapped in one.

    Why: agreement between annotators belongs beside the round's other numbers in metrics.csv.
    """
    for candidate in (judge, getattr(judge, "inner", None)):
        reported = getattr(candidate, "last_round_metrics", None)
        if isinstance(reported, dict):
            return dict(reported)
    return {}
