"""ADPO: query the judge only when the model is unsure; pseudo-label the confident pairs.

Paper: Ji, He, Gu, "Reinforcement Learning from Human Feedback with Active Queries",
https://arxiv.org/abs/2402.09401 (code ``jkx19/ActiveQuery``, ``DPOTrainer.dpo_loss`` with
``data_selection=True``). Spec: ``seeds_001_004`` section 2.

For every minibatch pair the detached implicit-reward margin
m = beta (log pi(y_c) - log pi_ref(y_c)) - beta (log pi(y_r) - log pi_ref(y_r)) decides:

* |m| <= gamma: not confident, ask for the label (one query);
* m > gamma: confident that the first response wins, train on that pseudo-label;
* m < -gamma: confident that the second wins, the pseudo-label flips the pair.

Upstream computes ``flag = sign(m + gamma)``, so m = -gamma exactly gives flag 0 (a zero
gradient, neither a query nor a label); here that boundary is a query, as |m| <= gamma says.
The counters of queries and pseudo-labels (removed in the last upstream commit) are reported in
``Selection.info``: they are the x-axis of every ADPO result.

Adaptation to prefloop: the margin is on r = mu - ref_logp (ref = 0 without a policy in the
loop), so ``gamma`` is on the scale of the reward model's scores (the README's 1.3 is on
beta-scaled log-prob rewards with beta = 0.1; tune gamma with the reward scale). Candidate pairs
are one random distinct pair per prompt (``pairing="random"``, the analogue of the dataset's one
pair; a two-response prompt gives its pair in random order) or every pair i < j
(``pairing="all"``). Every candidate is returned: pseudo_label 0 = ask the judge, +1 = first
wins, -1 = second wins. ``pseudo_labels=False`` is the paper's "ADPO (w/o PL)" ablation, which
drops the confident pairs instead of labelling them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    all_candidate_pairs,
    implicit_reward,
    random_pair_per_prompt,
    require_two_per_prompt,
)
from prefloop.acquisition.registry import register


def margin_decision(margin: np.ndarray, gamma: float) -> np.ndarray:
    """int8 decision per pair: 0 = query (|m| <= gamma), +1 / -1 = confident pseudo-label.

    Why: ADPO's labelling rule (https://arxiv.org/abs/2402.09401) with the m = -gamma boundary
    made a query instead of upstream's zero flag.
    """
    query = np.abs(margin) <= gamma
    return np.where(query, 0, np.where(margin > 0, 1, -1)).astype(np.int8)


@register(
    "adpo",
    kind="batch",
    paper="https://arxiv.org/abs/2402.09401",
    summary="ADPO: query pairs with |margin| <= gamma, pseudo-label the confident ones",
)
def adpo(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    gamma: float = 1.3,
    pairing: Literal["random", "all"] = "random",
    pseudo_labels: bool = True,
) -> Selection:
    """Split candidate pairs into judge queries and self-labelled confident pairs (ADPO).

    Why: labels are spent only where the model's margin is small; confident pairs are trained
    on with the model's own label, which the paper shows drives most of the gain
    (https://arxiv.org/abs/2402.09401).

    Args:
        inputs: the batch; uses ``mean``, ``mask`` and optionally ``ref_logp``.
        rng: draws the random pair (and its order) of every prompt when ``pairing="random"``.
        gamma: confidence threshold on the margin (1.3 in the Zephyr-beta recipe).
        pairing: ``random`` = one random distinct pair per prompt, ``all`` = every pair i < j.
        pseudo_labels: False drops the confident pairs ("ADPO w/o PL") instead of returning
            them with a pseudo-label.

    Returns:
        The pairs with ``score`` = margin m = r_first - r_second and ``pseudo_label`` as above;
        ``info`` counts ``queries``, ``pseudo_labels`` (= ``pseudo_first`` +
        ``pseudo_second``) and ``dropped_confident`` (w/o PL).
    """
    if not gamma >= 0:
        raise AcquisitionError(f"adpo: gamma must be >= 0, got {gamma}")
    if pairing == "random":
        require_two_per_prompt("adpo", inputs.mask)
        cands = random_pair_per_prompt(inputs.mask, rng)
    elif pairing == "all":
        cands = all_candidate_pairs(inputs.mask)
    else:
        raise AcquisitionError(f"adpo: pairing must be 'random' or 'all', got {pairing!r}")
    reward = implicit_reward("adpo", inputs)
    ri, rj = cands.gather(reward)
    margin = np.asarray(ri - rj, dtype=np.float64)
    decision = margin_decision(margin, float(gamma))
    confident = decision != 0
    n_first = int(np.sum(decision == 1)) if pseudo_labels else 0
    n_second = int(np.sum(decision == -1)) if pseudo_labels else 0
    info = {
        "candidates": cands.size,
        "queries": int(np.sum(~confident)),
        "pseudo_labels": n_first + n_second,
        "pseudo_first": n_first,
        "pseudo_second": n_second,
        "dropped_confident": 0 if pseudo_labels else int(np.sum(confident)),
        "gamma": float(gamma),
    }
    keep = np.arange(cands.size) if pseudo_labels else np.flatnonzero(~confident)
    return cands.to_selection(keep, margin[keep], decision[keep], info)
