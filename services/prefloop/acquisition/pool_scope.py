"""Pool scope: choose *which prompts* to label by ranking a candidate pool of prompts.

With ``spec.acquisition.scope: batch`` (the default) every round labels the next ``batchSize``
prompts of the shuffled pool in arrival order; a rule only chooses the pair(s) of each prompt.
With ``scope: pool`` the round engine hands the rule up to ``candidatePoolSize`` not-yet-labelled
prompts at once; a per-prompt rule then computes its pair(s) for every candidate (vectorised, as
always) and this module gives every candidate prompt one **acquisition value**, so the round's
pairs go to the ``batchSize`` prompts with the highest values. The value of a prompt is defined
per rule in the registry (``registry.POOL_VALUES``) and is, whenever the rule has one, the very
quantity the rule maximised to choose the pair (docs/methods.md, "Pool scope" gives the
reasoning for each rule):

* ``pair_score``: the rule's own ``Selection.score`` (DeltaUCB and DeltaQuantile: the optimistic
  reward gap ``UB_i - LB_j``; InfoMax and InfoGain: the pair's confidence-interval width; MaxMin:
  the score gap), the largest over the prompt's pairs;
* ``thompson_gap``: a posterior draw of the chosen pair's reward gap ``f_first - f_second`` with
  the rule's own sampler ``f = mu + beta * z * sigma``, ``z ~ U(-1, 1)`` (DRTS): Thompson sampling
  applied to the choice of prompt, so prompts whose best-vs-worst gap *could* be large are
  explored;
* ``duel_ambiguity``: ``beta * (sigma_i + sigma_j) - |mu_i - mu_j|``, how far the apparently
  worse response's upper bound reaches above the better one's lower bound (DTS, MaxMinLCB): those
  rules duel near-equal candidates for the best, and a duel teaches most where its outcome is
  least certain;
* ``uniform``: a seeded uniform value (Random, UltraFeedback, DeltaQwen: rules with no
  model-based notion of informativeness), so pool scope picks uniformly random prompts.

In the run's first round the engine ranks by ``uniform`` for every per-prompt rule
(``RoundRule.pool_warmup``): an untrained reward model's values are its initialisation's biases,
and ranking by them cost DRTS 0.016 held-out accuracy at 32 labels on dev.jsonl
(docs/benchmarks.md).

Batch rules (AE-DPO, AE-Borda, US-DPO, the BGPM rules, ActiveRLHF DUO/DPP) already rank pairs
across their whole input: in pool scope the candidate pool simply *is* their batch and they are
asked for ``batchSize * pairsPerPrompt`` pairs (``max_pairs``). ADPO, which labels every
confident pair itself and takes no ``max_pairs``, is refused (``spec.acquisition.scope``).

Diversity (``diversity: clusters``): a batch of near-duplicate prompts teaches little more than
one of them. As in diverse mini-batch active learning (Zhdanov 2019,
https://arxiv.org/abs/1901.05954), the ``PREFILTER`` x n most valuable candidates are clustered
with the seeded k-means of ``kmeans.py`` into n clusters (n = prompts wanted) on their prompt
features (the mean of their responses' text features), and each cluster contributes at most
its best prompt. The prefilter keeps the step fast on large pools (k-means on 10,000 x 384
features takes seconds; on the top 640 well under one) and keeps low-value prompts from being
picked only because they sit alone in a cluster.

Everything here is a pure, vectorised function of arrays and a seeded generator, so the choice
is the same in embedded, service and cluster mode and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.kmeans import kmeans

PoolValue = Literal["pair_score", "thompson_gap", "duel_ambiguity", "uniform", "batch"]
"""How a rule's pool-scope acquisition value of a prompt is computed (see the module doc);
``batch``: a batch rule that ranks the candidate pool itself."""
Diversity = Literal["none", "clusters"]
PREFILTER = 10
"""Diversity clusters the top ``PREFILTER`` x n candidates (Zhdanov's beta = 10)."""
KMEANS_RESTARTS = 3


def prompt_values(
    kind: PoolValue,
    inputs: AcquisitionInput,
    sel: Selection,
    rng: np.random.Generator,
    *,
    beta: float = 1.0,
) -> np.ndarray:
    """(P,) acquisition value of every candidate prompt of ``inputs`` (-inf: no pair selected).

    Why: pool scope spends the round's labels on the prompts where the rule expects to learn
    most; the value is the rule's own criterion evaluated at the pair it chose (module doc).
    A prompt with several pairs is worth its best pair. ``rng`` is drawn from only by the
    sampled values (``thompson_gap``, ``uniform``), one draw per pair, in selection order.
    """
    n_prompts = inputs.shape[0]
    rows, first, second = sel.prompt_index, sel.first, sel.second
    if kind == "pair_score":
        per_pair = np.asarray(sel.score, dtype=np.float64)
    elif kind == "uniform":
        per_pair = rng.random(sel.size)
    elif kind in ("thompson_gap", "duel_ambiguity"):
        mu_a, mu_b = inputs.mean[rows, first], inputs.mean[rows, second]
        sd_a, sd_b = inputs.std[rows, first], inputs.std[rows, second]
        if kind == "thompson_gap":
            z = rng.uniform(-1.0, 1.0, size=(2, sel.size))
            per_pair = (mu_a + beta * z[0] * sd_a) - (mu_b + beta * z[1] * sd_b)
        else:
            per_pair = beta * (sd_a + sd_b) - np.abs(mu_a - mu_b)
    else:
        raise AcquisitionError(f"pool value {kind!r} has no per-prompt value (a batch rule?)")
    per_pair = np.nan_to_num(np.asarray(per_pair, np.float64), nan=-np.inf)
    values = np.full(n_prompts, -np.inf)
    np.maximum.at(values, rows, per_pair)
    return values


def prompt_features(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(P, D) feature of each prompt: the mean of its real responses' text features.

    Why: the embedder encodes prompt and response together, so the mean over a prompt's
    answers is dominated by what they share, the prompt.
    """
    weights = mask.astype(np.float64)[:, :, None]
    total = (np.asarray(features, np.float64) * weights).sum(axis=1)
    return total / np.maximum(weights.sum(axis=1), 1.0)


def top_prompts(
    values: np.ndarray,
    n_wanted: int,
    *,
    features: Callable[[np.ndarray], np.ndarray] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of the ``n_wanted`` prompts to label, highest value first (ties: lower index).

    Why: the round's budget goes to the most informative prompts of the pool. With
    ``features`` (prompt rows -> their (rows, D) features, computed for the prefilter only)
    and ``rng``, the ``PREFILTER * n_wanted`` best
    prompts are clustered (k = ``n_wanted``) and at most one prompt per cluster is taken, the
    best of each; clusters left empty are filled with the best remaining prompts of the
    prefilter. Prompts with value -inf (no pair) are never returned.
    """
    values = np.asarray(values, np.float64)
    eligible = np.flatnonzero(np.isfinite(values))
    n = min(int(n_wanted), eligible.size)
    if n <= 0:
        return np.zeros(0, np.int64)
    order = eligible[np.argsort(-values[eligible], kind="stable")]
    if features is None or n == eligible.size:
        return np.asarray(order[:n], np.int64)
    if rng is None:
        raise AcquisitionError("top_prompts: diversity needs a seeded generator")
    order = order[: PREFILTER * n]
    in_order = kmeans(features(order), n, rng, n_init=KMEANS_RESTARTS).labels
    first_of_cluster = np.zeros(order.size, dtype=bool)
    first_of_cluster[np.unique(in_order, return_index=True)[1]] = True
    chosen = order[first_of_cluster][:n]
    if chosen.size < n:  # fewer distinct clusters than wanted: fill with the best others
        chosen = np.concatenate([chosen, order[~first_of_cluster][: n - chosen.size]])
    return np.asarray(chosen[np.argsort(-values[chosen], kind="stable")], np.int64)


def keep_prompts(sel: Selection, prompts: np.ndarray, **info: object) -> Selection:
    """The pairs of ``sel`` that belong to ``prompts``, in ``prompts``' order (value order).

    Why: pool scope labels only the chosen prompts; ordering pairs by prompt value makes the
    engine's budget cut (and every log) read best prompt first.
    """
    rank = np.full(int(max(sel.prompt_index.max(initial=-1), prompts.max(initial=-1))) + 1, -1)
    rank[prompts] = np.arange(prompts.size)
    pair_rank = rank[sel.prompt_index]
    rows = np.flatnonzero(pair_rank >= 0)
    rows = rows[np.argsort(pair_rank[rows], kind="stable")]
    return Selection(
        sel.prompt_index[rows],
        sel.first[rows],
        sel.second[rows],
        sel.score[rows],
        sel.pseudo_label[rows],
        {**sel.info, **info},
    )
