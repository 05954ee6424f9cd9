"""The Bayesian General Preference Model (BGPM) head on frozen features.

GPM (Zhang et al., ICML 2025, https://arxiv.org/abs/2410.02197) embeds every response in a
preference space and scores a pair with a skew-symmetric form, so cyclic preferences are
representable; the Bayesian variant (``muhd-umer/b-gpm``, spec ``seeds_001_004.md`` section 3)
puts a Gaussian posterior on the embedding. On frozen features, as here:

* ``Linear(D -> 2*dim)`` (weights N(0, (1/(D+1))^2), zero bias) gives raw_mu and raw_logvar;
  mu = raw_mu / |raw_mu| lies on the unit sphere, logvar = clamp(raw_logvar + init_logvar,
  logvar_min, logvar_max);
* a reparameterised sphere sample z = normalize(mu + eps * exp(logvar / 2)), and the embedding
  used in the training score e = normalize(rho * z + (1 - rho) * mu);
* score s(i, j) = <R v_i, v_j> = sum_l v_i[2l] v_j[2l+1] - v_i[2l+1] v_j[2l] (R = blockdiag of
  [[0, -1], [1, 0]]), so s(i, j) = -s(j, i) and P(i beats j) = sigmoid(s / tau);
* the "ELBO" loss mean_b[-log sigmoid(s(e_w, e_l) / tau) + beta_t (KL_w + KL_l)] with the KL of
  the variance only, KL = sum_d 1/2 [v_d/s0 - 1 - log(v_d/s0)] against N(0, s0 I), and beta_t
  rising linearly from 0 to ``max_kl_weight`` over the first ``kl_warmup_steps`` updates (the
  counter persists across rounds).

The reference value head has no bias because LLM hidden states share a large common component.
Frozen features need not (centred or whitened features do not), and without a bias a
transitive order cannot be represented on centred inputs: with one 2-block, s(i, j) =
sin(theta_j - theta_i), and theta = atan2(u.x, v.x) can only track a reward u.x if v.x is about
constant. The bias supplies that constant direction, so this head keeps one.

Per-response scalar reward. A GPM has no scalar reward in general, but its score is bilinear, so
the average score of y against a population of responses equals the score of y against their
mean embedding m: mean_j s(y, y_j) = <R v_y, m>. The head keeps m = the mean of the posterior
means mu over the responses of its latest training call (a seeded random unit vector before any
training) and defines ``mean(y) = <R mu_y, m> / tau``: the logit of y beating an average
training response (its Borda score, in logit units). ``samples`` are the same quantity for S
posterior draws z_s (the s-th draw uses one shared standard-normal eps_s for every response, so
predictions are a pure function of each response's features), and ``std`` is their unbiased std.
``pref_mean`` / ``pref_var`` are mu and exp(logvar); ``pairwise_logit(a, b) = <R mu_a, mu_b>/tau``.

Quirk of the reference loop: it never trains on the seed set before its first acquisition. The
engine should train this head on the seed labels before scoring the first round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prefloop.reward.base import RewardPrediction
from prefloop.reward.head_training import (
    HeadInputError,
    LrSchedule,
    as_feature_tensor,
    bradley_terry_nll,
    make_generator,
    std_over_members,
)
from prefloop.reward.torch_head import TorchRewardHead


def gpm_score(v_i: torch.Tensor, v_j: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric GPM score <R v_i, v_j> over the last axis (pairs of coordinates)."""
    return (v_i[..., 0::2] * v_j[..., 1::2] - v_i[..., 1::2] * v_j[..., 0::2]).sum(-1)


class BGPMNetwork(nn.Module):
    """The linear value head that maps features to a sphere mean and a log-variance."""

    def __init__(
        self,
        input_dim: int,
        embed_dim: int,
        init_logvar: float,
        logvar_min: float,
        logvar_max: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.init_logvar = init_logvar
        self.logvar_min = logvar_min
        self.logvar_max = logvar_max
        self.value_head = nn.Linear(input_dim, 2 * embed_dim, bias=True)
        with torch.no_grad():
            self.value_head.weight.copy_(
                torch.randn(self.value_head.weight.shape, generator=generator) / (input_dim + 1)
            )
            self.value_head.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-sphere means (B, dim) and clamped log-variances (B, dim)."""
        raw = self.value_head(x)
        mu = F.normalize(raw[:, : self.embed_dim], dim=-1)
        logvar = torch.clamp(
            raw[:, self.embed_dim :] + self.init_logvar, self.logvar_min, self.logvar_max
        )
        return mu, logvar


def sphere_sample(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Reparameterised posterior draw normalize(mu + eps * exp(logvar / 2))."""
    return F.normalize(mu + eps * torch.exp(0.5 * logvar), dim=-1)


class BGPMHead(TorchRewardHead):
    """Bayesian GPM head (arXiv 2410.02197 + muhd-umer/b-gpm) on frozen features.

    Args:
        input_dim: feature width D.
        seed: seeds the head init, the initial reference and the fixed evaluation draws.
        embed_dim: preference-embedding width (even; the reference AL script uses 12).
        tau: score temperature (0.1).
        init_logvar, logvar_min, logvar_max: log-variance offset and clamp (-5, [-8, 1]).
        prior_variance: s0 of the KL prior (0.03).
        sample_mix_ratio: rho in e = normalize(rho z + (1 - rho) mu) (scripts: 0.4).
        max_kl_weight, kl_warmup_steps: KL weight ramp (0.002 over 10 updates in the AL script).
        num_samples: posterior draws returned by ``predict`` (S >= 2).
        learning_rate: Adam(W) lr; the reference fine-tunes a whole LLM at 2e-6, a linear head
            on frozen features needs far more (default 1e-2).
        adam_betas: (0.9, 0.95) as in the reference.
    """

    kind = "bgpm"

    def __init__(
        self,
        input_dim: int,
        seed: int = 0,
        *,
        embed_dim: int = 12,
        tau: float = 0.1,
        init_logvar: float = -5.0,
        logvar_min: float = -8.0,
        logvar_max: float = 1.0,
        prior_variance: float = 0.03,
        sample_mix_ratio: float = 0.4,
        max_kl_weight: float = 0.002,
        kl_warmup_steps: int = 10,
        num_samples: int = 32,
        learning_rate: float = 1e-2,
        lr_schedule: LrSchedule = "cosine",
        adam_betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.0,
    ) -> None:
        if embed_dim < 2 or embed_dim % 2:
            raise HeadInputError(f"embed_dim must be even and >= 2, got {embed_dim}")
        if not tau > 0 or not prior_variance > 0:
            raise HeadInputError(f"tau and prior_variance must be > 0, got {tau}, {prior_variance}")
        if not 0.0 <= sample_mix_ratio <= 1.0:
            raise HeadInputError(f"sample_mix_ratio must be in [0, 1], got {sample_mix_ratio}")
        if logvar_min > logvar_max:
            raise HeadInputError(f"logvar_min {logvar_min} exceeds logvar_max {logvar_max}")
        if max_kl_weight < 0 or kl_warmup_steps < 0:
            raise HeadInputError("max_kl_weight and kl_warmup_steps must be >= 0")
        if num_samples < 2:
            raise HeadInputError(f"num_samples must be >= 2, got {num_samples}")
        self.embed_dim = int(embed_dim)
        self.tau = float(tau)
        self.init_logvar = float(init_logvar)
        self.logvar_min = float(logvar_min)
        self.logvar_max = float(logvar_max)
        self.prior_variance = float(prior_variance)
        self.sample_mix_ratio = float(sample_mix_ratio)
        self.max_kl_weight = float(max_kl_weight)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.num_samples = int(num_samples)
        self.adam_betas = (float(adam_betas[0]), float(adam_betas[1]))
        generator = make_generator(seed)
        network = BGPMNetwork(
            input_dim, self.embed_dim, self.init_logvar, logvar_min, logvar_max, generator
        )
        reference = F.normalize(torch.randn(self.embed_dim, generator=generator), dim=0)
        network.register_buffer("reference", reference)
        network.register_buffer(
            "eval_noise", torch.randn(self.num_samples, self.embed_dim, generator=generator)
        )
        super().__init__(
            input_dim=input_dim,
            seed=seed,
            network=network,
            learning_rate=learning_rate,
            lr_schedule=lr_schedule,
            adam_betas=self.adam_betas,
            adam_eps=1e-8,
            weight_decay=weight_decay,
        )

    def config(self) -> dict[str, Any]:
        """Architecture, prior and optimiser settings (checked when a state is loaded)."""
        return {
            "input_dim": self.input_dim,
            "embed_dim": self.embed_dim,
            "tau": self.tau,
            "init_logvar": self.init_logvar,
            "logvar_min": self.logvar_min,
            "logvar_max": self.logvar_max,
            "prior_variance": self.prior_variance,
            "sample_mix_ratio": self.sample_mix_ratio,
            "max_kl_weight": self.max_kl_weight,
            "kl_warmup_steps": self.kl_warmup_steps,
            "num_samples": self.num_samples,
            "learning_rate": self.learning_rate,
            "lr_schedule": self.lr_schedule,
            "adam_betas": list(self.adam_betas),
            "weight_decay": self.weight_decay,
        }

    def kl_weight(self) -> float:
        """beta_t of the current update: linear warm-up from 0 to ``max_kl_weight``."""
        if self.kl_warmup_steps == 0:
            return self.max_kl_weight
        return self.max_kl_weight * min(1.0, self.num_updates / self.kl_warmup_steps)

    def variance_kl(self, logvar: torch.Tensor) -> torch.Tensor:
        """Per-response KL of N(., diag exp(logvar)) to N(., s0 I), variance part only."""
        log_ratio = logvar - float(np.log(self.prior_variance))
        return 0.5 * (torch.exp(log_ratio) - 1.0 - log_ratio).sum(-1)

    def pair_loss(
        self, chosen: torch.Tensor, rejected: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One-sample ELBO: GPM logistic loss on mixed sphere samples + warmed-up variance KL."""
        b = chosen.shape[0]
        mu, logvar = self.network(torch.cat([chosen, rejected], dim=0))
        eps = torch.randn(mu.shape, generator=generator)
        z = sphere_sample(mu, logvar, eps)
        rho = self.sample_mix_ratio
        e = F.normalize(rho * z + (1.0 - rho) * mu, dim=-1)
        score = gpm_score(e[:b], e[b:])
        data = bradley_terry_nll(score / self.tau)
        kl = self.variance_kl(logvar)
        kl_pair = kl[:b] + kl[b:]
        beta = self.kl_weight()
        loss = (data + beta * kl_pair).mean()
        accuracy = (gpm_score(mu[:b], mu[b:]) > 0).float().mean()
        return loss, {
            "gpm_loss": data.mean(),
            "kl": kl_pair.mean(),
            "kl_weight": torch.tensor(beta),
            "train_accuracy": accuracy,
        }

    def after_training(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        """Set the reference embedding to the mean posterior mean of the trained responses."""
        mu, _ = self.network(torch.cat([chosen, rejected], dim=0))
        self.network.get_buffer("reference").copy_(mu.mean(dim=0))

    def embed(self, features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Sphere means and log-variances of (M, D) features (no gradient)."""
        x = as_feature_tensor(features, self.input_dim, name="features")
        with torch.inference_mode():
            mu, logvar = self.network(x)
        return mu, logvar

    def predict(self, features: np.ndarray) -> RewardPrediction:
        """Borda-style scalar reward vs the reference, posterior draws, and the embeddings."""
        mu, logvar = self.embed(features)
        with torch.inference_mode():
            reference = self.network.get_buffer("reference")
            eps = self.network.get_buffer("eval_noise")  # (S, dim)
            mean = gpm_score(mu, reference) / self.tau
            draws = sphere_sample(mu.unsqueeze(1), logvar.unsqueeze(1), eps.unsqueeze(0))
            samples = gpm_score(draws, reference) / self.tau  # (M, S)
            std = std_over_members(samples)
        return RewardPrediction(
            mean=mean.double().numpy(),
            std=std.double().numpy(),
            samples=samples.double().numpy(),
            pref_mean=mu.double().numpy(),
            pref_var=torch.exp(logvar).double().numpy(),
        )

    def pairwise_logit(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M,) logit of P(a beats b) = E[s(a, b)] / tau = <R mu_a, mu_b> / tau."""
        mu_a, _ = self.embed(features_a)
        mu_b, _ = self.embed(features_b)
        if mu_a.shape != mu_b.shape:
            raise HeadInputError(
                f"features_a has {mu_a.shape[0]} rows but features_b has {mu_b.shape[0]}"
            )
        return (gpm_score(mu_a, mu_b) / self.tau).double().numpy()

    def pairwise_logit_samples(self, features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
        """(M, S) logits s(z_a, z_b) / tau of posterior draws of both preference embeddings.

        Why: the BGPM posterior is on the embeddings, so a draw of the pairwise logit scores one
        draw of each response against the other (draw s uses the fixed noise eps_s for both),
        not the difference of their Borda scores.
        """
        mu_a, logvar_a = self.embed(features_a)
        mu_b, logvar_b = self.embed(features_b)
        if mu_a.shape != mu_b.shape:
            raise HeadInputError(
                f"features_a has {mu_a.shape[0]} rows but features_b has {mu_b.shape[0]}"
            )
        with torch.inference_mode():
            eps = self.network.get_buffer("eval_noise").unsqueeze(0)  # (1, S, dim)
            draws_a = sphere_sample(mu_a.unsqueeze(1), logvar_a.unsqueeze(1), eps)
            draws_b = sphere_sample(mu_b.unsqueeze(1), logvar_b.unsqueeze(1), eps)
            return (gpm_score(draws_a, draws_b) / self.tau).double().numpy()
