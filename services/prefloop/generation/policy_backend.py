"""A pool model that samples from the policy being trained (``backend: policy``).

AE-Borda-DPO online (seeds_001_004 section 1; Mehta et al., "Sample Efficient Preference
Alignment in LLMs via Active Exploration", https://arxiv.org/abs/2312.00267) draws the candidate
responses of every round from the current policy pi_t, then picks the pair with the AE-Borda
score, asks the judge, and takes DPO steps: the data follow the model as it learns. Here each
``responses.models`` entry with ``backend: policy`` is one such sample per prompt: several
entries (``policy-a``, ``policy-b``, ...) give several samples, each seeded by (run seed, entry
name, prompt id) like every other pool model.

The sampler holds the very :class:`~prefloop.trainer.policy.PolicyModel` the trainer role
updates (embedded runs share one object), so round r samples from the weights after round
r - 1's DPO steps: version r - 1. Decoding is the transformers backend's seeded sampling
(:class:`~prefloop.generation.transformers_backend.LoadedCausalLM`) on a left-padding copy of the
policy's tokenizer; system prompts, context checks and failures are that backend's.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from prefloop.data.records import PromptItem
from prefloop.generation.base import Answer, Sampling
from prefloop.generation.system_prompts import SystemPromptPolicy
from prefloop.generation.transformers_backend import LoadedCausalLM, TransformersModel

if TYPE_CHECKING:
    from prefloop.trainer.policy import PolicyModel


class PolicySampler(TransformersModel):
    """One ``backend: policy`` pool entry: answers with the current policy's samples."""

    def __init__(
        self,
        name: str,
        policy: PolicyModel,
        *,
        sampling: Sampling | None = None,
        batch_size: int = 8,
        system_prompts: SystemPromptPolicy | None = None,
    ) -> None:
        super().__init__(
            name,
            policy.spec.model or "policy",
            sampling=sampling,
            batch_size=batch_size,
            device=policy.spec.device,
            system_prompts=system_prompts,
        )
        self.policy = policy
        tokenizer = copy.deepcopy(policy.tokenizer)
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        self.versions: list[int] = []
        """The policy version each :meth:`answer` call sampled from (for the round metrics)."""

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        """Sample every prompt's answer from the policy as it is now (no copy is loaded).

        Why: the online variant's responses must come from the policy being trained, not from
        its starting checkpoint on disk.
        """
        from prefloop.reward.threads import single_threaded

        lm = LoadedCausalLM(self.name, self.policy.policy, self.tokenizer, self.device)
        self.versions.append(self.policy.version)
        with single_threaded():
            return self._answer_with(lm, items, seed)
