"""Step 3 of a round: run the rule on distinct texts, then cut its pairs to the budgets.

The round engine calls two functions here:

* :func:`select_distinct` builds the rule's input from the reward scores, masks repeated texts
  (``distinct_texts.py``), fills in the engine-set parameters and maps the selection back to the
  batch's prompt rows;
* :func:`cut_to_budget` drops pairs picked twice, prices every pair (a judge call? a dataset
  pair?) and, when the round cannot afford them all, keeps the subset the rule's registry entry
  declares (``budget.py``).

With ``acquisition.scope: pool`` the batch is the round's candidate pool, and
:func:`select_distinct` keeps only the pairs of the prompts the pool ranking chooses
(:func:`choose_pool_prompts`, ``acquisition/pool_scope.py``).

Pair ids are order-free (:func:`pair_id`): the same two responses of a prompt are one pair
whichever the rule put first, so the judge is never asked twice about them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prefloop.acquisition import Selection
from prefloop.acquisition.base import AcquisitionError, AcquisitionInput
from prefloop.acquisition.pool_scope import (
    keep_prompts,
    prompt_features,
    prompt_values,
    top_prompts,
)
from prefloop.acquisition.registry import RuleInfo
from prefloop.data.records import PromptItem, Response, ScoredBatch, stable_id
from prefloop.engine.budget import Remaining, keep_within_budget, priority_order, subset
from prefloop.engine.distinct_texts import identical_text_mask, restrict_rows
from prefloop.engine.roles import AcquisitionRole, RewardScores
from prefloop.judge.base import response_key


def pair_id(run_name: str, item: PromptItem, a: Response, b: Response) -> str:
    """Order-free id of a pair of responses to one prompt: the judge's dedup key."""
    ka, kb = sorted((response_key(a), response_key(b)))
    return stable_id(run_name, item.prompt_id, ka, kb)


def selection_pair_ids(run_name: str, items: list[PromptItem], sel: Selection) -> list[str]:
    """The pair id of every selected pair, in selection order (for the selections topic)."""
    out = []
    for m in range(sel.size):
        item = items[int(sel.prompt_index[m])]
        first, second = item.responses[int(sel.first[m])], item.responses[int(sel.second[m])]
        out.append(pair_id(run_name, item, first, second))
    return out


@dataclass(frozen=True)
class RoundRule:
    """The rule a round runs, with the parameters the spec gives it and its seeds."""

    info: RuleInfo
    params: dict[str, Any]
    pairs_per_prompt: int
    acquisition_seed: int
    truncation_seed: int
    scope: str = "batch"
    """``batch``: the rule pairs every prompt of the batch; ``pool``: the batch is a candidate
    pool and only the ``prompts_per_round`` best prompts keep their pairs."""
    prompts_per_round: int = 0
    """Pool scope: prompts a round labels (``spec.batchSize``)."""
    diversity: str = "none"
    """Pool scope: ``clusters`` takes at most one prompt per k-means cluster."""
    pool_seed: int = 0
    """Pool scope: the seed of the sampled prompt values and of the k-means."""
    pool_warmup: bool = False
    """Pool scope, the run's first round: per-prompt rules rank prompts by the ``uniform``
    value (an untrained reward model's values carry no information, only its biases)."""


def select_distinct(
    acquisition: AcquisitionRole,
    rule: RoundRule,
    items: list[PromptItem],
    batch: ScoredBatch,
    scores: RewardScores,
    left: Remaining,
) -> tuple[Selection, dict[str, int]]:
    """Run ``rule`` on the responses with distinct texts; the selection indexes ``items``.

    Why: identical texts make a pair with no preference in it, and batch rules should be asked
    for no more pairs than the budget can still pay for (then the cut is the rule's own choice).
    Returns the selection and the counts the round metrics report.
    """
    repeated = identical_text_mask(items, batch.mask)
    mask = batch.mask & ~repeated
    rows = np.flatnonzero(mask.sum(axis=1) >= 2)
    pool = rule.scope == "pool"
    counts = {
        "identical_responses_masked": int(repeated.sum()),
        "prompts_without_distinct_pair": len(items) - len(rows),
    }
    if rows.size == 0:
        empty = np.zeros(0, np.int64)
        return Selection(empty, empty, empty, np.zeros(0), np.zeros(0, np.int8)), counts
    inputs = AcquisitionInput(
        mean=scores.mean,
        std=scores.std,
        mask=batch.mask,
        samples=scores.samples,
        features=scores.features,
        pref_mean=scores.pref_mean,
        pref_var=scores.pref_var,
        judge_scores=batch.judge_scores,
        models=models_array(items, batch.mask),
    )
    params = dict(rule.params)
    accepted = rule.info.parameters()
    if "pairs_per_prompt" in accepted:
        params.setdefault("pairs_per_prompt", rule.pairs_per_prompt)
    if "max_pairs" in accepted:
        prompts = min(len(rows), rule.prompts_per_round) if pool else len(rows)
        wanted = prompts * rule.pairs_per_prompt
        params.setdefault("max_pairs", min(wanted, left.annotations, left.pairs))
    restricted = restrict_rows(inputs, rows, mask[rows])
    sel = acquisition.select(
        restricted,
        method=rule.info.name,
        params=params,
        seed=rule.acquisition_seed,
    )
    if pool and rule.info.pool_value != "batch":
        sel = choose_pool_prompts(rule, restricted, sel, left)
    in_batch = Selection(
        rows[sel.prompt_index], sel.first, sel.second, sel.score, sel.pseudo_label, sel.info
    )
    return in_batch, counts


def choose_pool_prompts(
    rule: RoundRule, inputs: AcquisitionInput, sel: Selection, left: Remaining
) -> Selection:
    """Pool scope: the pairs of the best ``rule.prompts_per_round`` prompts of ``sel``.

    Why: the round's labels go to the candidate prompts with the highest acquisition value
    (``acquisition/pool_scope.py``), never more prompts than the budgets can still pay for, so
    the engine's budget cut never has to drop a chosen prompt at random.
    """
    kind = rule.info.pool_value
    if kind is None or kind == "batch":
        raise AcquisitionError(f"rule {rule.info.name!r} has no per-prompt pool value")
    if rule.pool_warmup:
        kind = "uniform"
    affordable = math.ceil(min(left.annotations, left.pairs) / rule.pairs_per_prompt)
    n_wanted = min(rule.prompts_per_round, max(affordable, 1))
    rng = np.random.default_rng(rule.pool_seed)
    beta = float(rule.params.get("beta", rule.info.parameters().get("beta", 1.0)))
    values = prompt_values(kind, inputs, sel, rng, beta=beta)
    features = None
    if rule.diversity == "clusters":
        response_features = inputs.features
        if response_features is None:
            raise AcquisitionError(
                "acquisition.diversity: clusters needs text features from the reward model"
            )

        def features(rows: np.ndarray) -> np.ndarray:
            return prompt_features(response_features[rows], inputs.mask[rows])

    chosen = top_prompts(values, n_wanted, features=features, rng=rng)
    return keep_prompts(sel, chosen, pool_candidates=inputs.shape[0])


def cut_to_budget(
    sel: Selection,
    pair_ids: list[str],
    judged: set[str] | dict[str, Any],
    rule: RoundRule,
    self_labels_enter_dataset: bool,
    left: Remaining,
) -> Selection:
    """Drop repeated pairs, then keep what ``left`` affords, as the rule declares (budget.py).

    Why: a judge call is owed only for a pair not judged before in this run; a self-labelled
    pair costs a dataset pair only if the dataset keeps it. ``pair_ids`` is in selection order.
    """
    first_seen = _first_occurrences(pair_ids)
    sel = subset(sel, first_seen)
    ids = [pid for pid, keep in zip(pair_ids, first_seen, strict=True) if keep]
    asks_judge = sel.pseudo_label == 0
    judge_cost = asks_judge & np.array([pid not in judged for pid in ids], dtype=bool)
    pair_cost = asks_judge | self_labels_enter_dataset
    if int(judge_cost.sum()) <= left.annotations and int(pair_cost.sum()) <= left.pairs:
        return sel
    order = priority_order(sel.score, rule.info.truncation, rule.truncation_seed)
    keep = keep_within_budget(judge_cost, pair_cost, order, left)
    return subset(
        sel, keep, budget_truncated=int(sel.size - keep.sum()), truncation=rule.info.truncation
    )


def prompts_without_distinct_pair(items: list[PromptItem], mask: np.ndarray) -> np.ndarray:
    """(P,) bool: prompts left with fewer than two distinct texts (nothing to pair).

    Why: pool scope retires them from the candidate pool, as batch scope passes them by.
    """
    return np.asarray((mask & ~identical_text_mask(items, mask)).sum(axis=1) < 2)


def _first_occurrences(ids: list[str]) -> np.ndarray:
    """(M,) bool: True at the first row of every distinct id (a pair picked twice counts once)."""
    seen: set[str] = set()
    out = np.zeros(len(ids), dtype=bool)
    for row, key in enumerate(ids):
        if key not in seen:
            seen.add(key)
            out[row] = True
    return out


def models_array(items: list[PromptItem], mask: np.ndarray) -> np.ndarray:
    """(P, N) object array of each response's model name ("" for padding)."""
    out = np.full(mask.shape, "", dtype=object)
    for p, it in enumerate(items):
        for n, r in enumerate(it.responses):
            out[p, n] = r.model
    return out
