"""Budgets: what a run may still spend, and how a round's selection is cut to fit.

A run has two budgets (``spec.budget``), both counted per run and reported every round:

* ``maxAnnotations`` counts **judge calls**: a pair the judge labels for the first time in this
  run (a pair already judged is answered from the run's record and costs nothing);
* ``maxPairs`` counts **pairs that enter the dataset**, whatever labelled them: the judge,
  DeltaQwen's identity label, or ADPO's pseudo-label when ``output.includePseudoLabels`` keeps
  those in the dataset. A rule that labels its own pairs spends no judge calls, so without this
  budget it would never stop.

When a round's selection would overspend either budget, the engine keeps a subset chosen the way
the rule's registry entry declares (``RuleInfo.truncation``):

* ``score``: highest ``Selection.score`` first. Only batch rules whose score ranks pairs across
  the whole batch with "higher = more informative" declare it (AE-DPO, AE-Borda, US-DPO, the
  BGPM rules, ActiveRLHF DUO/DPP): for them the cut is what asking the rule for fewer pairs
  would give.
* ``random``: a seeded random subset. Every other rule: per-prompt rules (their score ranks pairs
  within one prompt, not across prompts; ActiveUltraFeedback's budget cut is a prefix of the
  shuffled prompts, which a random subset reproduces), rules with no score (Random, DTS, DRTS:
  NaN) and rules whose score is not informativeness (ADPO: a signed margin, where the highest
  values are the most confident pairs; MaxMinLCB: the leader's LCB, where the highest values are
  the least ambiguous pairs).

Pairs that cost nothing (pseudo-labelled pairs kept out of the dataset) are never cut. Everything
here is a pure function of arrays, so the cut is the same in every mode and after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefloop.acquisition.base import Selection
from prefloop.acquisition.registry import Truncation

UNLIMITED = 10**12
"""A budget left unset in the spec."""


@dataclass(frozen=True)
class Remaining:
    """What the run may still spend: judge calls and dataset pairs."""

    annotations: int
    pairs: int

    @property
    def exhausted(self) -> str:
        """Why nothing more can be spent ("" if something can)."""
        if self.annotations <= 0:
            return "annotation budget exhausted"
        if self.pairs <= 0:
            return "pair budget exhausted"
        return ""


def remaining_budget(
    max_annotations: int | None, max_pairs: int | None, annotations_used: int, pairs_used: int
) -> Remaining:
    """The budgets left after ``annotations_used`` judge calls and ``pairs_used`` pairs."""
    return Remaining(
        annotations=(UNLIMITED if max_annotations is None else max_annotations) - annotations_used,
        pairs=(UNLIMITED if max_pairs is None else max_pairs) - pairs_used,
    )


def priority_order(score: np.ndarray, truncation: Truncation, seed: int) -> np.ndarray:
    """Row order in which a budget cut keeps a selection's pairs.

    Why: ``score`` rules keep their most informative pairs (NaN scores last, ties in selection
    order); every other rule keeps a random subset drawn from ``seed`` (the round's truncation
    seed), so the cut carries no bias the rule did not ask for.
    """
    if truncation == "score":
        return np.argsort(-np.nan_to_num(np.asarray(score, float), nan=-np.inf), kind="stable")
    return np.random.default_rng(seed).permutation(len(score))


def keep_within_budget(
    judge_cost: np.ndarray, pair_cost: np.ndarray, order: np.ndarray, left: Remaining
) -> np.ndarray:
    """(M,) bool: the rows kept when taking them greedily in ``order`` within both budgets.

    Why: a row that needs a judge call also becomes a dataset pair, a self-labelled row may only
    cost a pair, and a free row costs nothing; greedy in priority order keeps the most wanted
    rows that fit. ``judge_cost`` / ``pair_cost`` are (M,) bool in selection order.
    """
    judge = np.asarray(judge_cost, bool)[order]
    pair = np.asarray(pair_cost, bool)[order] | judge
    eligible = ~judge | (np.cumsum(judge) <= left.annotations)
    counted = eligible & pair
    fits = ~counted | (np.cumsum(counted) <= left.pairs)
    keep = np.zeros(len(order), dtype=bool)
    keep[order] = eligible & fits
    return keep


def subset(sel: Selection, keep: np.ndarray, **info: object) -> Selection:
    """The rows of ``sel`` where ``keep`` is True (selection order kept), with extra info."""
    return Selection(
        sel.prompt_index[keep],
        sel.first[keep],
        sel.second[keep],
        sel.score[keep],
        sel.pseudo_label[keep],
        {**sel.info, **info},
    )
