"""The common body of every torch reward head: the training loop, anchoring and checkpoints.

A concrete head (``EnsembleHead``, ``EpinetHead``, ``BGPMHead``) supplies its network, its
per-minibatch loss and its predictions; this base class supplies what must be identical across
heads for the engine to treat them interchangeably:

* ``train_steps``: exactly ``max_steps`` AdamW steps over shuffled passes of the given pairs, a
  per-call cosine learning-rate decay, the anchor penalty towards the initial weights, and loss
  metrics averaged over the steps. The optimiser's moments persist across calls (rounds).
* the anchor: every trainable tensor has a frozen snapshot taken at initialisation; the penalty
  is ``mean over all parameters of (theta - theta_0)^2``. For an ensemble whose members all have
  the same size this equals ``mean_k [mean_params (theta_k - theta_k^0)^2]`` of the
  ActiveUltraFeedback loss (https://arxiv.org/abs/2603.09692, spec ``activeuf.md`` section 2).
* ``state_dict`` / ``load_state_dict``: kind, configuration, weights, anchors, optimiser state
  and the update counter, as deep copies (saving a state and training on must not mutate it).
  Everything in it loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from prefloop.reward.base import RewardPrediction
from prefloop.reward.head_training import (
    HeadInputError,
    LrSchedule,
    check_pairs,
    check_state_config,
    check_train_args,
    make_generator,
    minibatch_indices,
    scheduled_lr,
    set_lr,
    std_over_members,
)


class TorchRewardHead(ABC):
    """Base class of the torch heads; implements the ``RewardHead`` protocol's shared parts."""

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        input_dim: int,
        seed: int,
        network: nn.Module,
        learning_rate: float,
        lr_schedule: LrSchedule,
        adam_betas: tuple[float, float],
        adam_eps: float,
        weight_decay: float,
    ) -> None:
        if input_dim < 1:
            raise HeadInputError(f"input_dim must be >= 1, got {input_dim}")
        if not learning_rate > 0:
            raise HeadInputError(f"learning_rate must be > 0, got {learning_rate}")
        if lr_schedule not in ("cosine", "constant"):
            raise HeadInputError(f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")
        self.input_dim = int(input_dim)
        self.seed = int(seed)
        self.learning_rate = float(learning_rate)
        self.lr_schedule: LrSchedule = lr_schedule
        self.weight_decay = float(weight_decay)
        self.network = network
        self.anchors: list[torch.Tensor] = [
            p.detach().clone() for p in self.network.parameters() if p.requires_grad
        ]
        self.optimizer = torch.optim.AdamW(
            self._trainable(),
            lr=self.learning_rate,
            betas=adam_betas,
            eps=adam_eps,
            weight_decay=weight_decay,
            foreach=False,
        )
        self.num_updates = 0
        self.network.eval()

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor arguments that fix the architecture and the optimiser."""

    @abstractmethod
    def pair_loss(
        self, chosen: torch.Tensor, rejected: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Data loss of one minibatch (without the anchor) and named scalar parts to report."""

    @abstractmethod
    def predict(self, features: np.ndarray) -> RewardPrediction:
        """Reward mean, std and samples for (M, D) features."""

    # -- hooks ----------------------------------------------------------------------------
    def after_training(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:  # noqa: B027
        """Called once after every ``train_steps`` call with all of its pairs (default: no-op)."""

    def extra_state(self) -> dict[str, Any]:
        """Head-specific state beyond weights and optimiser (default: none)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what ``extra_state`` saved (default: nothing)."""

    # -- shared behaviour -----------------------------------------------------------------
    def _trainable(self) -> Iterator[nn.Parameter]:
        return (p for p in self.network.parameters() if p.requires_grad)

    def anchor_penalty(self) -> torch.Tensor:
        """Mean squared distance of all trainable parameters from their initial values."""
        total = torch.zeros(())
        count = 0
        for param, anchor in zip(self._trainable(), self.anchors, strict=True):
            total = total + ((param - anchor) ** 2).sum()
            count += param.numel()
        return total / max(count, 1)

    def pairwise_logit(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M,) logit of P(a beats b): for scalar-reward heads, mean(a) - mean(b)."""
        a = self.predict(features_a)
        b = self.predict(features_b)
        if a.mean.shape != b.mean.shape:
            raise HeadInputError(
                f"features_a has {a.mean.shape[0]} rows but features_b has {b.mean.shape[0]}"
            )
        return np.asarray(a.mean - b.mean, dtype=np.float64)

    def pairwise_logit_samples(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M, S) posterior draws of the logit of P(a beats b): sample s of a minus sample s of b.

        Why: the predictive probability of a preference is the average of sigmoid over these
        draws, not the sigmoid of the mean logit; calibration (``prefloop bench calibration``)
        and the pairwise spread sigma(a - b) are read from them. Member s of an ensemble (or index
        z_s of an epinet) scores both responses, so the draws are paired.
        """
        a = self.predict(features_a)
        b = self.predict(features_b)
        if a.samples.shape != b.samples.shape:
            raise HeadInputError(
                f"features_a has {a.mean.shape[0]} rows but features_b has {b.mean.shape[0]}"
            )
        return np.asarray(a.samples - b.samples, dtype=np.float64)

    def train_steps(
        self,
        chosen: np.ndarray,
        rejected: np.ndarray,
        *,
        max_steps: int,
        batch_size: int,
        anchor_weight: float,
        generator_seed: int,
    ) -> dict[str, float]:
        """Run ``max_steps`` optimiser steps on the pairs; return the step-averaged losses.

        Why: one call is one training round of the active loop. The loss is the head's data
        loss plus ``anchor_weight`` times the anchor penalty (ActiveUltraFeedback's lambda_t,
        https://arxiv.org/abs/2603.09692). Minibatches are successive shuffled passes drawn
        from ``torch.Generator(generator_seed)``, so equal inputs give identical weights.
        """
        c, r = check_pairs(chosen, rejected, self.input_dim)
        check_train_args(max_steps, batch_size, anchor_weight)
        generator = make_generator(generator_seed)
        self.network.train()
        sums: dict[str, float] = {}
        steps = int(max_steps)
        lr = self.learning_rate
        for step, idx in enumerate(minibatch_indices(c.shape[0], batch_size, steps, generator)):
            lr = scheduled_lr(self.learning_rate, step, steps, self.lr_schedule)
            set_lr(self.optimizer, lr)
            data_loss, parts = self.pair_loss(c[idx], r[idx], generator)
            anchor = self.anchor_penalty()
            loss = data_loss + anchor_weight * anchor
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.num_updates += 1
            parts = {"loss": loss, "anchor_loss": anchor, **parts}
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        self.network.eval()
        metrics = {name: total / max(steps, 1) for name, total in sums.items()}
        metrics.update(
            {
                "steps": float(steps),
                "num_pairs": float(c.shape[0]),
                "anchor_weight": float(anchor_weight),
                "last_lr": float(lr),
            }
        )
        with torch.no_grad():
            self.after_training(c, r)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Kind, config, weights, anchors, optimiser state and counters (deep copies)."""
        return {
            "kind": self.kind,
            "config": self.config(),
            "seed": self.seed,
            "network": copy.deepcopy(self.network.state_dict()),
            "anchors": [a.clone() for a in self.anchors],
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "num_updates": self.num_updates,
            "extra": copy.deepcopy(self.extra_state()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; raises if it was saved by another kind or configuration."""
        check_state_config(self.kind, self.config(), state)
        anchors = state["anchors"]
        if len(anchors) != len(self.anchors):
            raise HeadInputError(
                f"state has {len(anchors)} anchor tensors, this {self.kind} head has "
                f"{len(self.anchors)}"
            )
        self.network.load_state_dict(copy.deepcopy(state["network"]))
        self.anchors = [a.detach().clone() for a in anchors]
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.num_updates = int(state["num_updates"])
        self.seed = int(state["seed"])
        self.load_extra_state(copy.deepcopy(state.get("extra", {})))
        self.network.eval()


def prediction_from_samples(samples: torch.Tensor) -> RewardPrediction:
    """Mean, unbiased std and the samples themselves of (M, S) reward samples, as float64.

    Why: the ensemble's members and the epinet's evaluation indices are both draws from the
    head's reward posterior (https://arxiv.org/abs/2603.09692, https://arxiv.org/abs/2107.08924);
    acquisition rules read their mean, spread and raw samples alike.
    """
    with torch.inference_mode():
        mean = samples.mean(dim=1)
        std = std_over_members(samples)
    return RewardPrediction(
        mean=mean.double().numpy(),
        std=std.double().numpy(),
        samples=samples.double().numpy(),
    )


def xavier_uniform_(
    weight: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator, gain: float = 1.0
) -> None:
    """In-place Glorot/Xavier uniform init of a (possibly member-batched) weight tensor.

    Why: the reference ensemble initialises every Linear with ``xavier_uniform_`` (gain 1);
    doing it on the batched (K, in, out) tensor with an explicit generator keeps the init
    vectorised and seeded (Glorot & Bengio 2010, https://proceedings.mlr.press/v9/glorot10a).
    """
    bound = gain * (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        weight.copy_(torch.rand(weight.shape, generator=generator) * (2 * bound) - bound)
