"""US-DPO: uncertainty sampling, the offline baseline of the AE-DPO paper.

Paper: https://arxiv.org/abs/2312.00267 (code ``belakaria/active-llm-alignment``,
``selection_strategy=us``). Spec: ``seeds_001_004`` section 1.3.

Upstream scores each candidate (chosen, rejected) pair by the mean of the two responses'
MC-dropout log-prob variances, alpha = (Var[log pi(y_1)] + Var[log pi(y_2)]) / 2, and keeps the
``torch.topk``. Here the variance is the reward model's epistemic variance ``std ** 2`` and the
candidates are every same-prompt pair i < j; selection is the same top-``max_pairs`` with a
per-prompt cap as ``ae_dpo`` (one pair per prompt by default).
"""

from __future__ import annotations

import numpy as np

from prefloop.acquisition.base import AcquisitionInput, Selection
from prefloop.acquisition.batch_selection import (
    all_candidate_pairs,
    check_per_prompt_cap,
    check_per_response,
    resolve_budget,
    top_k_pairs,
)
from prefloop.acquisition.registry import register


@register(
    "us_dpo",
    kind="batch",
    truncation="score",
    paper="https://arxiv.org/abs/2312.00267",
    summary="US-DPO: top pairs by the mean variance of the two responses",
)
def us_dpo(
    inputs: AcquisitionInput,
    rng: np.random.Generator,
    *,
    max_pairs: int | None = None,
    max_pairs_per_prompt: int = 1,
) -> Selection:
    """Select the pairs whose two responses have the largest mean epistemic variance.

    Why: the plain uncertainty-sampling baseline against which AE-DPO is measured
    (https://arxiv.org/abs/2312.00267); it ignores which arm is better. Deterministic: the
    generator is not used.

    Args:
        inputs: the batch; uses ``std`` and ``mask``.
        rng: unused (kept for the common rule signature).
        max_pairs: pairs to return across the batch; None = one per prompt (P).
        max_pairs_per_prompt: cap on pairs taken from a single prompt.
    """
    check_per_prompt_cap("us_dpo", max_pairs_per_prompt)
    k = resolve_budget("us_dpo", max_pairs, inputs.shape[0])
    var = check_per_response("us_dpo", "std", inputs.std, inputs, nonnegative=True) ** 2
    cands = all_candidate_pairs(inputs.mask)
    vi, vj = cands.gather(var)
    alpha = 0.5 * (vi + vj)
    idx = top_k_pairs(alpha, cands.prompt_index, k, max_pairs_per_prompt)
    return cands.to_selection(idx, alpha[idx], info={"candidates": cands.size})
