"""The reward role of a policy loop: implicit rewards and their MC-dropout spread.

AE-DPO's uncertainty (seeds_001_004 section 1.2, ``belakaria/active-llm-alignment``): the final
hidden state goes through ``Dropout(p)`` (p = 0.05) before the LM head, ``mc_samples`` (5) times;
mu(y) and s(y) are the mean and the (unbiased) std of the summed response log-prob over those
passes; ref(y) is one pass of the frozen reference. This role serves, per response,

    mean = beta (mu - ref),   std = beta s,   samples[k] = beta (logp_k - ref)

i.e. the DPO implicit reward, on the scale of ADPO's gamma and AE-Borda's sigmoid. The rules
compute r = mean - ref_logp; serving the reference already subtracted (``ref_logp`` None) gives
the very same AE-DPO width, Borda bounds and ADPO margin as serving mu and ref apart, and keeps
the reward-role contract (:class:`~prefloop.engine.roles.RewardScores`) unchanged.

Differences from upstream, stated: the model body runs in eval mode (upstream also leaves the
model's own dropout on, which the tiny and most modern LMs set to 0); the masks come from a
``torch.Generator`` seeded by the model version and the prompt ids, so a resumed run draws the
same masks.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from prefloop.data.records import PromptItem, ScoredBatch
from prefloop.engine.roles import RewardScores
from prefloop.posttrain.logprobs import (
    batch_tensors,
    sequence_logprobs,
    summed_logprobs_from_logits,
)
from prefloop.reward.policy_evaluation import implicit_rewards, reward_pairwise_accuracy
from prefloop.reward.threads import single_threaded
from prefloop.trainer.policy import PolicyModel, prompt_messages


def dropout_masks(
    shape: tuple[int, ...], p: float, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """(samples, *shape) inverted-dropout masks: 0 with probability p, else 1 / (1 - p)."""
    keep = torch.rand((samples, *shape), generator=generator) >= p
    return keep.float() / (1.0 - p)


def mc_dropout_logprobs(
    model: Any, ids: torch.Tensor, attention: torch.Tensor, response: torch.Tensor, masks: Any
) -> torch.Tensor:
    """(S, B) summed response log-probs, one row per dropout mask on the final hidden state.

    Why: AE-DPO's ``DropoutModel`` (dropout between the last hidden state and the LM head) is
    where the policy's epistemic spread comes from; one body pass serves every mask.
    """
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
        last = hidden.hidden_states[-1]
        head = model.get_output_embeddings()
        rows = [summed_logprobs_from_logits(head(last * m), ids, response) for m in masks]
    return torch.stack(rows)


def policy_estimates(
    model: PolicyModel,
    prompts: Sequence[Any],
    responses: Sequence[str],
    generator: torch.Generator,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, S) MC-dropout log-probs under the policy and (B,) reference log-probs.

    Why: the two numbers per response every policy-based acquisition rule is built on.
    """
    spec = model.spec
    samples, refs = [], []
    for start in range(0, len(prompts), batch_size):
        ids, attention, response = batch_tensors(
            model.tokenizer,
            prompts[start : start + batch_size],
            responses[start : start + batch_size],
            spec.max_length,
        )
        ids, attention, response = (t.to(spec.device) for t in (ids, attention, response))
        hidden_size = int(model.policy.config.hidden_size)
        masks = dropout_masks((*ids.shape, hidden_size), spec.dropout, spec.mc_samples, generator)
        samples.append(mc_dropout_logprobs(model.policy, ids, attention, response, masks).T)
        ones = torch.ones((1, *ids.shape, hidden_size))
        refs.append(mc_dropout_logprobs(model.reference, ids, attention, response, ones)[0])
    return torch.cat(samples).cpu().numpy(), torch.cat(refs).cpu().numpy()


def served_rewards(
    samples: np.ndarray, ref: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, samples) the role serves: beta (mu - ref), beta s, beta (logp_k - ref)."""
    centred = beta * (samples - ref[:, None])
    return centred.mean(axis=1), centred.std(axis=1, ddof=1), centred


def mask_seed(version: int, items: list[PromptItem]) -> int:
    """The dropout-mask seed of a scoring call: the model version and the prompt ids."""
    ids = "\x1f".join(it.prompt_id for it in items).encode()
    return (version * 1_000_003 + zlib.crc32(ids)) % (2**63)


class PolicyReward:
    """Reward role over a :class:`PolicyModel`: implicit rewards with MC-dropout spread."""

    def __init__(self, model: PolicyModel) -> None:
        self.model = model
        self._reference_logprobs: dict[tuple[str, str], float] = {}

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        t0 = time.perf_counter()
        prompts: list[Any] = []
        texts: list[str] = []
        for it in items:
            messages = prompt_messages(it)
            for r in it.responses:
                prompts.append(messages)
                texts.append(r.text)
        generator = torch.Generator().manual_seed(mask_seed(self.model.version, items))
        with single_threaded():
            samples, ref = policy_estimates(self.model, prompts, texts, generator)
        mean, std, centred = served_rewards(samples, ref, self.model.spec.beta)
        p, n = mask.shape
        out_mean = np.zeros((p, n))
        out_std = np.zeros((p, n))
        out_samples = np.zeros((p, n, centred.shape[1]))
        out_mean[mask], out_std[mask], out_samples[mask] = mean, std, centred
        return RewardScores(
            mean=out_mean,
            std=out_std,
            samples=out_samples,
            features=None,
            pref_mean=None,
            pref_var=None,
            model_version=self.model.version,
            timings={"policy_seconds": time.perf_counter() - t0},
        )

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        """Held-out implicit-reward pairwise accuracy and Spearman (``policy_evaluation.py``).

        The reference's log-probs of the held-out responses are computed on the first call and
        kept (the reference is frozen); each call then runs the policy once per response.
        """
        if not items:
            return {}
        batch = ScoredBatch.from_items(items)
        prompts: list[Any] = []
        texts: list[str] = []
        keys: list[tuple[str, str]] = []
        for it in items:
            messages = prompt_messages(it)
            for r in it.responses:
                prompts.append(messages)
                texts.append(r.text)
                keys.append((it.prompt_id, r.text))
        spec = self.model.spec
        with single_threaded():
            missing = [k for k in range(len(keys)) if keys[k] not in self._reference_logprobs]
            if missing:
                with torch.no_grad():
                    ref = sequence_logprobs(
                        self.model.reference,
                        self.model.tokenizer,
                        [prompts[k] for k in missing],
                        [texts[k] for k in missing],
                        max_length=spec.max_length,
                    )
                for k, value in zip(missing, ref.double().tolist(), strict=True):
                    self._reference_logprobs[keys[k]] = value
            ref_logp = np.array([self._reference_logprobs[k] for k in keys])
            rewards = implicit_rewards(
                self.model.policy,
                ref_logp,
                self.model.tokenizer,
                prompts,
                texts,
                beta=spec.beta,
                max_length=spec.max_length,
            )
        predicted = np.zeros(batch.mask.shape)
        predicted[batch.mask] = rewards
        return reward_pairwise_accuracy(predicted, batch.judge_scores, batch.mask)
