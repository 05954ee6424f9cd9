"""The policy's held-out metric: implicit-reward pairwise accuracy (issue 11).

The pure function against hand counts (ties, unknown scores, padding), and the policy reward
role's ``evaluate`` against rewards computed response by response with a tiny Llama.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny_llama import save_tiny_causal_lm
from prefloop.data.records import PromptItem, Response
from prefloop.posttrain.logprobs import sequence_logprobs
from prefloop.reward.policy import PolicyReward
from prefloop.reward.policy_evaluation import reward_pairwise_accuracy
from prefloop.spec_posttrain import PolicySpec
from prefloop.trainer.policy import PolicyModel


def test_accuracy_counts_pairs_like_the_judge() -> None:
    rewards = np.array([[0.3, 0.25, 0.2, 9.0], [1.0, 1.0, 0.0, 0.0]])
    scores = np.array([[0.9, 0.1, 0.5, np.nan], [0.2, 0.8, 0.8, 0.0]])
    mask = np.array([[True, True, True, True], [True, True, True, False]])
    out = reward_pairwise_accuracy(rewards, scores, mask)
    # prompt 0 (NaN score left out): (0,1) hit, (0,2) hit, (1,2) miss  -> 2 of 3
    # prompt 1 (slot 3 padded): (0,1) reward tie = 0.5, (0,2) miss, (1,2) score tie: no pair
    assert out["num_pairs"] == 5
    assert out["accuracy"] == pytest.approx((2 + 0.5) / 5)
    assert out["num_prompts_spearman"] == 2
    with pytest.raises(ValueError, match="one shape"):
        reward_pairwise_accuracy(rewards[:, :3], scores, mask)


def test_no_scored_pair_gives_nan() -> None:
    out = reward_pairwise_accuracy(np.zeros((1, 2)), np.full((1, 2), 0.5), np.ones((1, 2), bool))
    assert np.isnan(out["accuracy"]) and out["num_pairs"] == 0


def test_policy_evaluate_ranks_by_the_implicit_reward(tmp_path: Path) -> None:
    texts = ["red", "blue is nice", "green!", "one two three", "1 2 3", "three"]
    model_dir = save_tiny_causal_lm(tmp_path / "lm", [*texts, "name a colour"], seed=4)
    model = PolicyModel(PolicySpec(model=str(model_dir), beta=0.5), str(model_dir), seed=0)
    with torch.no_grad():  # move the policy away from its reference
        for p in model.policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    items = [
        PromptItem(f"p{k}", q, tuple(Response(f"m{i}", t, s) for i, (t, s) in enumerate(rs)))
        for k, (q, rs) in enumerate(
            [
                ("name a colour", [("red", 0.9), ("blue is nice", 0.2), ("green!", 0.5)]),
                ("count to three", [("one two three", 0.1), ("1 2 3", 0.7), ("three", 0.4)]),
            ]
        )
    ]
    role = PolicyReward(model)
    out = role.evaluate(items)

    hand = np.zeros((2, 3))
    for k, it in enumerate(items):
        for i, r in enumerate(it.responses):
            pol, ref = (
                float(sequence_logprobs(m, model.tokenizer, [it.prompt], [r.text])[0])
                for m in (model.policy, model.reference)
            )
            hand[k, i] = 0.5 * (pol - ref)
    scores = np.array([[r.score for r in it.responses] for it in items])
    expected = reward_pairwise_accuracy(hand, scores, np.ones((2, 3), bool))
    assert out == pytest.approx(expected)
    assert out["num_pairs"] == 6 and 0 <= out["accuracy"] <= 1
    assert role.evaluate(items) == out  # the cached reference log-probs change nothing
    assert role.evaluate([]) == {}
