"""The policy in the loop (``trainer.kind: policy``): a causal LM, its frozen reference, DPO steps.

With a policy, the loop's model is a causal LM pi (AE-DPO, AE-Borda-DPO and ADPO train one;
seeds_001_004 sections 1-2) and pi_ref, a frozen copy of its starting weights:

* the trainer role adds each round's labelled pairs to a replay (deduplicated by pair id) and
  takes ``steps_per_round`` DPO steps (sigmoid loss, beta; AdamW) on ``batch_size`` pairs drawn
  with the round's seed; the model version goes up by one per round, as the reward head's does;
* the reward role (:mod:`prefloop.reward.policy`) reads the same object.

Determinism: the DPO steps run in eval mode (no internal dropout, as TRL's ``disable_dropout``)
on batches drawn from ``numpy.random.default_rng(seed)``; the state (policy weights, optimiser,
replay, version) is saved with the run's checkpoints, so a resumed run trains identically.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefloop.data.records import PreferencePair, PromptItem
from prefloop.engine.roles import TrainResult
from prefloop.posttrain.logprobs import dpo_loss, sequence_logprobs
from prefloop.reward.threads import single_threaded
from prefloop.spec_posttrain import PolicySpec

STATE_FILE = "policy.pt"


@dataclass(frozen=True)
class PolicyPair:
    """One labelled pair as the policy trains on it: prompt messages, chosen and rejected text."""

    pair_id: str
    prompt: Any
    chosen: str
    rejected: str


def prompt_messages(item: PromptItem) -> list[dict[str, str]]:
    """The prompt as chat messages (a bare string is one user turn)."""
    if isinstance(item.prompt, str):
        return [{"role": "user", "content": item.prompt}]
    return [dict(m) for m in item.prompt]


class PolicyModel:
    """Policy + frozen reference + tokenizer + optimiser + replay, shared by two roles."""

    def __init__(self, spec: PolicySpec, model_path: str, *, seed: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch.manual_seed(seed)
        loaded: Any = AutoModelForCausalLM.from_pretrained(model_path)
        self.policy: Any = loaded.to(spec.device).eval()
        self.reference: Any = copy.deepcopy(self.policy).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=spec.learning_rate)
        self.replay: dict[str, PolicyPair] = {}
        self.version = 0

    def train_round(self, pairs: list[PreferencePair], seed: int) -> dict[str, float]:
        """Add the round's pairs to the replay, then take the configured DPO steps.

        Why: the trainer role of a policy loop; every labelled pair so far can be drawn, so a
        round with few labels still trains on a full batch.
        """
        new = 0
        for p in pairs:
            if p.pair_id not in self.replay:
                prompt = prompt_messages(PromptItem(p.prompt_id, p.prompt))
                self.replay[p.pair_id] = PolicyPair(
                    p.pair_id, prompt, p.chosen.text, p.rejected.text
                )
                new += 1
        metrics = {"new_pairs": float(new), "buffer_size": float(len(self.replay)), "steps": 0.0}
        if not self.replay:
            return metrics
        rng = np.random.default_rng(seed)
        ids = sorted(self.replay)
        losses = []
        for _ in range(self.spec.steps_per_round):
            take = rng.choice(len(ids), size=min(self.spec.batch_size, len(ids)), replace=False)
            batch = [self.replay[ids[i]] for i in take]
            losses.append(self.dpo_step(batch))
        metrics.update({"steps": float(len(losses)), "dpo_loss": float(np.mean(losses))})
        return metrics

    def dpo_step(self, batch: list[PolicyPair]) -> float:
        """One sigmoid-DPO optimiser step on ``batch``; returns the loss before the step."""
        prompts = [b.prompt for b in batch]
        logp = {
            (name, which): sequence_logprobs(
                model,
                self.tokenizer,
                prompts,
                _t(batch, which),
                batch_size=len(batch),
                grad=name == "policy",
                max_length=self.spec.max_length,
            )
            for name, model in (("policy", self.policy), ("ref", self.reference))
            for which in ("c", "r")
        }
        pol_c, pol_r, ref_c, ref_r = (
            logp[k] for k in (("policy", "c"), ("policy", "r"), ("ref", "c"), ("ref", "r"))
        )
        loss = dpo_loss(pol_c, pol_r, ref_c, ref_r, self.spec.beta)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser, replay (oldest first by id) and version, for checkpoints."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": [vars(p) for p in self.replay.values()],
            "version": self.version,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay = {p["pair_id"]: PolicyPair(**p) for p in state["replay"]}
        self.version = int(state["version"])


def _t(batch: list[PolicyPair], which: str) -> list[str]:
    return [b.chosen if which == "c" else b.rejected for b in batch]


class PolicyTrainer:
    """Trainer role over a :class:`PolicyModel`: DPO steps, a new version per round."""

    def __init__(self, model: PolicyModel) -> None:
        self.model = model

    def train(
        self,
        pairs: list[PreferencePair],
        *,
        round_index: int,
        n_done: int,
        n_total: int,
        seed: int,
    ) -> TrainResult:
        with single_threaded():
            metrics = self.model.train_round(pairs, seed)
        self.model.version += 1
        return TrainResult(self.model.version, metrics)

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / STATE_FILE)

    def load_state(self, directory: Path) -> None:
        self.model.load_state_dict(torch.load(directory / STATE_FILE, weights_only=False))
