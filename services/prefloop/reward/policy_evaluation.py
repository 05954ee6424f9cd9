"""Held-out quality of the policy in the loop: implicit-reward pairwise accuracy.

A DPO policy ranks two responses by its implicit reward r(x, y) = beta (log pi(y|x) -
log pi_ref(y|x)) (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290, section 5; the
"reward accuracy" TRL logs). On prompts never selected from, the fraction of response pairs with
differing judge scores that r orders as the judge does is the policy's counterpart of the reward
head's held-out accuracy (:mod:`prefloop.reward.evaluation`), so ``heldout_accuracy`` in
``metrics.csv``, the learning curve and the summary mean the same thing for both loop models.
The rewards here are deterministic: no MC dropout (that spread is for acquisition only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from prefloop.posttrain.logprobs import sequence_logprobs
from prefloop.reward.evaluation import per_prompt_spearman


def reward_pairwise_accuracy(
    rewards: np.ndarray, scores: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """Pairwise accuracy of (P, N) predicted rewards against (P, N) judge scores.

    Why: the held-out metric of any loop model that predicts one scalar per response; the same
    protocol as the reward head's (every pair of a prompt whose judge scores differ; a reward
    tie counts half; NaN scores are unknown and left out), plus the mean per-prompt Spearman.

    Returns:
        ``accuracy`` (NaN without a scored pair), ``num_pairs``, ``spearman`` and
        ``num_prompts_spearman``.
    """
    r = np.asarray(rewards, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if r.shape != sc.shape or np.shape(mask) != sc.shape:
        raise ValueError(
            f"rewards {r.shape}, scores {sc.shape} and mask {np.shape(mask)} must have one shape"
        )
    valid = np.asarray(mask, dtype=bool) & np.isfinite(sc)
    ii, jj = np.triu_indices(sc.shape[1], k=1)
    truth = np.sign(sc[:, ii] - sc[:, jj])
    ok = valid[:, ii] & valid[:, jj] & (truth != 0)
    predicted = np.sign(r[:, ii] - r[:, jj])
    hits = np.where(predicted == 0, 0.5, (predicted == truth).astype(np.float64))[ok]
    rho = per_prompt_spearman(r, sc, valid) if valid.any() else np.zeros(0)
    defined = rho[np.isfinite(rho)]
    return {
        "accuracy": float(hits.mean()) if hits.size else float("nan"),
        "num_pairs": float(hits.size),
        "spearman": float(defined.mean()) if defined.size else float("nan"),
        "num_prompts_spearman": float(defined.size),
    }


def implicit_rewards(
    policy: Any,
    reference_logprobs: np.ndarray,
    tokenizer: Any,
    prompts: Sequence[Any],
    responses: Sequence[str],
    *,
    beta: float,
    max_length: int | None,
) -> np.ndarray:
    """(B,) beta (log pi(y|x) - log pi_ref(y|x)) of every (prompt, response), no dropout.

    Why: DPO's implicit reward, the policy's own ranking of responses; the reference's
    log-probs are given (they never change, so the caller computes them once).
    """
    with torch.no_grad():
        logp = sequence_logprobs(policy, tokenizer, prompts, responses, max_length=max_length)
    return np.asarray(beta * (logp.double().cpu().numpy() - reference_logprobs))
