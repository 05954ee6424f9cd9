"""AE-DPO (offline): ask about the pairs whose better arm has the widest confidence interval.

Paper: Mehta, Belakaria, ..., Neiswanger, "Sample Efficient Preference Alignment in LLMs via
Active Exploration", https://arxiv.org/abs/2312.00267 (code ``belakaria/active-llm-alignment``,
``selection_strategy=ae``). Spec: ``seeds_001_004`` section 1.3.

Upstream, every training step streams 3 x batch candidate (chosen, rejected) pairs, computes
for both responses the MC-dropout mean mu and std s of log pi(y|x) and the reference log-prob
ref, and with kappa = ``active_beta`` = 2 scores

    upper = max(mu_1 + kappa s_1 - ref_1, mu_2 + kappa s_2 - ref_2)
    lower = max(mu_1 - kappa s_1 - ref_1, mu_2 - kappa s_2 - ref_2)
    alpha = upper - lower,

the width of the confidence interval on the better arm's implicit reward (DPO's beta is
omitted; it does not change the ranking). The top ``batch_size`` candidates are trained on.

Adaptation to prefloop: the candidates are every same-prompt pair i < j of the batch (a prompt
with two responses, e.g. an hh-rlhf chosen/rejected pair, contributes exactly its one pair);
mu and s are the reward model's per-response mean and epistemic std, and ref is
``inputs.ref_logp`` (zero when there is no policy in the loop, so the rule then acts on the
reward model's own confidence intervals). The top ``max_pairs`` candidates are kept (one per
prompt by default, i.e. P pairs), with at most ``max_pairs_per_prompt`` from any one prompt.
The engine plays the role of the upstream iterator by offering more prompts than it wants
labels (selection ratio 3 upstream).
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    all_candidate_pairs,
    check_per_prompt_cap,
    check_per_response,
    implicit_reward,
    resolve_budget,
    top_k_pairs,
)
from prefloop.acquisition.registry import register

PAPER = "https://arxiv.org/abs/2312.00267"


def better_arm_ci_width(
    reward: np.ndarray, std: np.ndarray, first: np.ndarray, second: np.ndarray, kappa: float
) -> np.ndarray:
    """alpha = max(UCB_1, UCB_2) - max(LCB_1, LCB_2) for pairs given as flat index arrays.

    Why: AE-DPO's acquisition, the CI width of the arm that is optimistically/pessimistically
    best (https://arxiv.org/abs/2312.00267, section 1.3 of the spec).

    Args:
        reward: (M,) implicit reward of every response (flattened batch).
        std: (M,) its std.
        first, second: (C,) positions into ``reward`` / ``std``.
        kappa: confidence multiplier.
    """
    upper = np.maximum(reward[first] + kappa * std[first], reward[second] + kappa * std[second])
    lower = np.maximum(reward[first] - kappa * std[first], reward[second] - kappa * std[second])
    return np.asarray(upper - lower, dtype=np.float64)


@register(
    "ae_dpo",
    kind="batch",
    truncation="score",
    paper=PAPER,
    summary="AE-DPO: top pairs by the confidence-interval width of the better arm (kappa=2)",
)
def ae_dpo(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    kappa: float = 2.0,
    max_pairs: int | None = None,
    max_pairs_per_prompt: int = 1,
) -> Selection:
    """Select the pairs whose better arm's implicit reward is least certain (AE-DPO).

    Why: asking about pairs where even the optimistic winner is uncertain concentrates labels
    where the policy's estimate of the best response is loosest
    (https://arxiv.org/abs/2312.00267). The generator is not used: the rule is deterministic.

    Args:
        inputs: the batch; uses ``mean``, ``std``, ``mask`` and optionally ``ref_logp``.
        rng: unused (kept for the common rule signature).
        kappa: CI multiplier (``active_beta`` upstream, 2.0).
        max_pairs: pairs to return across the batch; None = one per prompt (P).
        max_pairs_per_prompt: cap on pairs taken from a single prompt.
    """
    if kappa < 0:
        raise AcquisitionError(f"ae_dpo: kappa must be >= 0, got {kappa}")
    check_per_prompt_cap("ae_dpo", max_pairs_per_prompt)
    k = resolve_budget("ae_dpo", max_pairs, inputs.shape[0])
    reward = implicit_reward("ae_dpo", inputs)
    std = check_per_response("ae_dpo", "std", inputs.std, inputs, nonnegative=True)
    cands = all_candidate_pairs(inputs.mask)
    n = inputs.shape[1]
    flat_first = cands.prompt_index * n + cands.first
    flat_second = cands.prompt_index * n + cands.second
    alpha = better_arm_ci_width(
        reward.reshape(-1), std.reshape(-1), flat_first, flat_second, float(kappa)
    )
    idx = top_k_pairs(alpha, cands.prompt_index, k, max_pairs_per_prompt)
    return cands.to_selection(idx, alpha[idx], info={"candidates": cands.size})
