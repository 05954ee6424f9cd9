"""The anchored deep ensemble of MLP heads (ActiveUltraFeedback's "ENN", rewarduq's ENS-MLP).

K independent MLP reward heads sit on the same frozen features. Each head is
``Linear(D->h) ReLU, (num_layers-1) x [Linear(h->h) ReLU], Linear(h->1, bias=False)``, Xavier
uniform weights and zero biases; the only source of diversity is the random initialisation.
The loss for a minibatch of B pairs (c_b chosen, r_b rejected) is, exactly as in the reference
(spec ``activeuf.md`` section 2, https://arxiv.org/abs/2603.09692)::

    L = mean_{b,k} -log sigmoid(r_k(c_b) - r_k(r_b))            Bradley-Terry, per head
      + lambda_t * mean_k mean_params (theta_k - theta_k^0)^2    anchor to each head's init
      + 0.01 * mean_{b,k} (r_k(c_b) + r_k(r_b))^2                centre rewards at 0

Prediction: mean over heads, std over heads (unbiased, N-1), samples = the K per-head rewards.

All K heads are one set of batched weight tensors (K, in, out) evaluated with ``torch.matmul`` /
``torch.baddbmm``: no Python loop over heads.

Hyper-parameters. The paper's loop uses K=20, h=128, num_layers=2, AdamW lr 5e-5 with a cosine
decay per round, 1 pass over at most 6,400 replayed pairs per round (<= 100 steps of 64). That
learning rate is tuned for 60k prompts x thousands of steps; on the few hundred to few thousand
pairs of a small run it barely moves the heads. The defaults here keep the architecture and the
loss and raise the learning rate to 1e-3 (measured on MiniLM features of AlpacaEval: held-out
pairwise accuracy rises within a few dozen steps, without over-fitting a few hundred pairs).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from prefloop.reward.base import RewardPrediction
from prefloop.reward.head_training import (
    HeadInputError,
    LrSchedule,
    as_feature_tensor,
    centred_bradley_terry,
    forward_in_chunks,
    make_generator,
)
from prefloop.reward.torch_head import (
    TorchRewardHead,
    prediction_from_samples,
    xavier_uniform_,
)

PAPER_LEARNING_RATE = 5e-5
"""The ActiveUltraFeedback loop's AdamW learning rate (configs/loop.yaml), for reference."""


class BatchedMLPEnsemble(nn.Module):
    """K MLPs with identical shapes, stored as (K, in, out) weights and (K, out) biases."""

    def __init__(
        self,
        input_dim: int,
        num_members: int,
        hidden_dim: int,
        num_layers: int,
        generator: torch.Generator,
        xavier_gain: float = 1.0,
    ) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * num_layers
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(dims):
            w = nn.Parameter(torch.empty(num_members, fan_in, fan_out))
            xavier_uniform_(w, fan_in, fan_out, generator, xavier_gain)
            self.weights.append(w)
            self.biases.append(nn.Parameter(torch.zeros(num_members, fan_out)))
        self.output = nn.Parameter(torch.empty(num_members, hidden_dim, 1))
        xavier_uniform_(self.output, hidden_dim, 1, generator, xavier_gain)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, h) last hidden activations of every member for (B, D) inputs."""
        h = torch.relu(torch.matmul(x, self.weights[0]) + self.biases[0].unsqueeze(1))
        for w, b in zip(list(self.weights)[1:], list(self.biases)[1:], strict=True):
            h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B) rewards of every member for (B, D) inputs."""
        return torch.bmm(self.hidden(x), self.output).squeeze(-1)


class DiversifiedEnsemble(nn.Module):
    """Trainable members plus a frozen random prior per member and fixed bootstrap keys.

    Why: with few labels every member of a plain ensemble is pulled towards the same fit and the
    spread collapses where it matters; a randomized prior (Osband et al. 2018,
    https://arxiv.org/abs/1806.03335) keeps a member-specific function that data must overrule,
    and per-member bootstrap weights make each member see a different reweighting of the data.
    """

    def __init__(
        self,
        members: BatchedMLPEnsemble,
        prior: BatchedMLPEnsemble,
        prior_scale: float,
        projection: torch.Tensor,
    ) -> None:
        super().__init__()
        self.members = members
        self.prior = prior
        self.prior.requires_grad_(False)
        self.prior_scale = prior_scale
        self.register_buffer("projection", projection)  # (D, K) keys of the bootstrap draws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B) rewards f_k(x) + beta p_k(x)."""
        out = self.members(x)
        if self.prior_scale > 0:
            out = out + self.prior_scale * self.prior(x)
        return out

    def bootstrap_weights(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        """(K, B) fixed Exp(1) weights of each pair for each member (Bayesian bootstrap).

        A pure function of the pair's features and the seeded projection, so a pair keeps its
        weights across minibatches, rounds and resumes, and (a, b) weighs as (b, a).
        """
        key = ((chosen - rejected) @ self.get_buffer("projection")).abs().T  # (K, B)
        uniform = torch.frac(key * 7919.0).clamp(1e-6, 1 - 1e-6)
        return -torch.log1p(-uniform)


class EnsembleHead(TorchRewardHead):
    """Anchored deep ensemble of K MLP reward heads (ActiveUltraFeedback, arXiv 2603.09692).

    Args:
        input_dim: feature width D.
        seed: seeds the initialisation (and so the ensemble's diversity).
        num_heads: K (paper: 20).
        hidden_dim: h (paper: 128).
        num_layers: hidden layers per head (paper: 2, i.e. 3 Linear layers).
        learning_rate: AdamW learning rate (paper: 5e-5; default 1e-3, see module docstring).
        center_coefficient: weight of the reward-centring term (paper: 0.01).
        lr_schedule: "cosine" (restarted every round, as in the paper) or "constant".
        weight_decay: AdamW weight decay (paper: 0, the transformers default).
        xavier_gain: gain of the Xavier uniform init (paper: 1.0).
        random_prior_scale: beta of randomized prior functions (Osband et al. 2018,
            https://arxiv.org/abs/1806.03335): member k predicts f_k(x) + beta p_k(x) with p_k a
            frozen random MLP of the same shape; 0 (default) is the paper's plain ensemble.
        bootstrap: weight each member's loss on a pair by a fixed Exp(1) draw (the Bayesian
            bootstrap, Rubin 1981), so members fit different reweightings of the same labels.
    """

    kind = "ensemble"

    def __init__(
        self,
        input_dim: int,
        seed: int = 0,
        *,
        num_heads: int = 20,
        hidden_dim: int = 128,
        num_layers: int = 2,
        learning_rate: float = 1e-3,
        center_coefficient: float = 0.01,
        lr_schedule: LrSchedule = "cosine",
        weight_decay: float = 0.0,
        xavier_gain: float = 1.0,
        random_prior_scale: float = 0.0,
        bootstrap: bool = False,
    ) -> None:
        if num_heads < 2:
            raise HeadInputError(f"num_heads must be >= 2 for an ensemble std, got {num_heads}")
        if hidden_dim < 1 or num_layers < 1:
            raise HeadInputError(
                f"hidden_dim and num_layers must be >= 1, got {hidden_dim} and {num_layers}"
            )
        if center_coefficient < 0:
            raise HeadInputError(f"center_coefficient must be >= 0, got {center_coefficient}")
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.center_coefficient = float(center_coefficient)
        if random_prior_scale < 0:
            raise HeadInputError(f"random_prior_scale must be >= 0, got {random_prior_scale}")
        self.xavier_gain = float(xavier_gain)
        self.random_prior_scale = float(random_prior_scale)
        self.bootstrap = bool(bootstrap)
        generator = make_generator(seed)
        members = BatchedMLPEnsemble(
            input_dim, num_heads, hidden_dim, num_layers, generator, xavier_gain
        )
        network: nn.Module = members
        if self.random_prior_scale > 0 or self.bootstrap:
            # drawn after the trainable members, so their initialisation is unchanged
            network = DiversifiedEnsemble(
                members,
                BatchedMLPEnsemble(
                    input_dim, num_heads, hidden_dim, num_layers, generator, xavier_gain
                ),
                self.random_prior_scale,
                torch.randn(input_dim, num_heads, generator=generator),
            )
        super().__init__(
            input_dim=input_dim,
            seed=seed,
            network=network,
            learning_rate=learning_rate,
            lr_schedule=lr_schedule,
            adam_betas=(0.9, 0.999),
            adam_eps=1e-8,
            weight_decay=weight_decay,
        )

    def config(self) -> dict[str, Any]:
        """Architecture and optimiser settings (checked when a state is loaded)."""
        return {
            "input_dim": self.input_dim,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "learning_rate": self.learning_rate,
            "center_coefficient": self.center_coefficient,
            "lr_schedule": self.lr_schedule,
            "weight_decay": self.weight_decay,
            "xavier_gain": self.xavier_gain,
            # only when set, so that checkpoints of plain ensembles keep loading
            **({"random_prior_scale": self.random_prior_scale} if self.random_prior_scale else {}),
            **({"bootstrap": True} if self.bootstrap else {}),
        }

    def member_rewards(self, features: torch.Tensor) -> torch.Tensor:
        """(K, M) per-head rewards, evaluated in chunks of rows."""
        return forward_in_chunks(self.network, features, self.num_heads)

    def pair_loss(
        self, chosen: torch.Tensor, rejected: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-head Bradley-Terry plus reward centring on one minibatch (anchor added by base)."""
        rewards = self.network(torch.cat([chosen, rejected], dim=0))  # (K, 2B)
        weights = None
        if isinstance(self.network, DiversifiedEnsemble) and self.bootstrap:
            weights = self.network.bootstrap_weights(chosen, rejected)
        return centred_bradley_terry(
            rewards, chosen.shape[0], self.center_coefficient, weights=weights
        )

    def predict(self, features: np.ndarray) -> RewardPrediction:
        """Mean, unbiased std and the K per-head rewards (as samples) of (M, D) features."""
        x = as_feature_tensor(features, self.input_dim, name="features")
        with torch.inference_mode():
            samples = self.member_rewards(x).T.contiguous()  # (M, K)
        return prediction_from_samples(samples)
