"""The downstream proxy: what a produced preference dataset is worth to someone who trains on it.

A fresh reward model - one plain Bradley-Terry MLP over the same frozen embedder features, no
ensemble, no uncertainty, no anchors - is trained only on the (chosen, rejected) pairs of the
dataset and scored on held-out prompts by pairwise accuracy against the judge scores. This is the
reward-model step of RLHF (Ouyang et al. 2022, https://arxiv.org/abs/2203.02155) with the
Bradley-Terry likelihood (Bradley & Terry 1952), and the evaluation protocol of RewardBench
(Lambert et al. 2024, https://arxiv.org/abs/2403.13787). It needs no GPU and no policy.

Training is seeded with a ``torch.Generator`` (initialisation and minibatch order) and runs on one
thread: the model is tiny and two intra-op threads on a busy 2-core machine are much slower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prefloop.reward.evaluation import per_prompt_spearman
from prefloop.reward.threads import single_threaded

DECISIVE_SHARE_OF_RANGE = 0.05
"""A held-out pair is decisive when its judge-score gap is >= 5% of the scores' range (the
complement of the label-efficiency bench's near-ties)."""


class DownstreamInputError(ValueError):
    """Features or scores given to the downstream proxy have the wrong shape or content."""


@dataclass(frozen=True)
class ProbeConfig:
    """Hyper-parameters of the Bradley-Terry probe (fixed for every method, so it is fair)."""

    hidden_dim: int = 128
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_steps: int = 600


class BradleyTerryProbe:
    """A single MLP reward model r(x) trained with the Bradley-Terry loss -log sigma(r_c - r_r)."""

    def __init__(self, input_dim: int, seed: int, config: ProbeConfig | None = None) -> None:
        if input_dim < 1:
            raise DownstreamInputError(f"input_dim must be >= 1, got {input_dim}")
        self.config = config or ProbeConfig()
        self.input_dim = int(input_dim)
        self.generator = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = nn.Sequential(
                nn.Linear(input_dim, self.config.hidden_dim),
                nn.ReLU(),
                nn.Linear(self.config.hidden_dim, 1),
            )
        self.net.double()

    def fit(self, chosen: np.ndarray, rejected: np.ndarray) -> float:
        """Train on (B, D) chosen / rejected features; returns the final mean BT loss.

        Why: the probe must see exactly the dataset (no replay, no anchors), so its accuracy
        measures the dataset, not the loop's reward model.
        """
        c = self._check(chosen, "chosen")
        r = self._check(rejected, "rejected")
        if c.shape != r.shape:
            raise DownstreamInputError(f"chosen {c.shape} and rejected {r.shape} must match")
        if c.shape[0] == 0:
            return float("nan")
        cfg = self.config
        tc, tr = torch.from_numpy(c), torch.from_numpy(r)
        opt = torch.optim.AdamW(
            self.net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        n = tc.shape[0]
        steps, last = 0, float("nan")
        with single_threaded():
            for _ in range(cfg.epochs):
                order = torch.randperm(n, generator=self.generator)
                for s in range(0, n, cfg.batch_size):
                    idx = order[s : s + cfg.batch_size]
                    margin = self.net(tc[idx]).squeeze(-1) - self.net(tr[idx]).squeeze(-1)
                    loss = -nn.functional.logsigmoid(margin).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    last = float(loss.detach())
                    steps += 1
                    if steps >= cfg.max_steps:
                        return last
        return last

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(M,) reward of (M, D) features."""
        x = self._check(features, "features")
        with single_threaded(), torch.no_grad():
            return self.net(torch.from_numpy(x)).squeeze(-1).numpy().astype(np.float64)

    def _check(self, x: np.ndarray, name: str) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.input_dim:
            raise DownstreamInputError(
                f"{name}: expected (M, {self.input_dim}) features, got shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise DownstreamInputError(f"{name}: features contain NaN or inf")
        return a


def heldout_pairwise_accuracy(
    rewards: np.ndarray, scores: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """Pairwise accuracy and mean per-prompt Spearman of (P, N) rewards against judge scores.

    Why: the same protocol as ``prefloop.reward.evaluation.pairwise_accuracy`` (every pair of a
    prompt whose judge scores differ; a tie in reward counts half) for a scalar reward model.
    ``decisive_accuracy`` counts only pairs whose score gap is at least
    ``DECISIVE_SHARE_OF_RANGE`` of the scores' range: on AlpacaEval 58% of the pairs are
    near-ties (two failed answers scored 1e-6 and 3e-6) whose order no text model can learn,
    and they dominate the plain accuracy.
    """
    rw = np.asarray(rewards, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if rw.shape != sc.shape or m.shape != sc.shape or rw.ndim != 2:
        raise DownstreamInputError(
            f"rewards {rw.shape}, scores {sc.shape} and mask {m.shape} must all be the same (P, N)"
        )
    valid = m & np.isfinite(sc)
    n = sc.shape[1]
    ii, jj = np.triu_indices(n, k=1)
    ok = valid[:, ii] & valid[:, jj] & (sc[:, ii] != sc[:, jj])
    gap = np.abs(sc[:, ii] - sc[:, jj])[ok]
    truth = np.sign(sc[:, ii] - sc[:, jj])[ok]
    pred = np.sign(rw[:, ii] - rw[:, jj])[ok]
    hits = np.where(pred == 0, 0.5, pred == truth).astype(np.float64)
    acc = float(hits.mean()) if truth.size else float("nan")
    score_range = float(np.ptp(sc[valid])) if valid.any() else 0.0
    decisive = gap >= DECISIVE_SHARE_OF_RANGE * score_range
    decisive_acc = float(hits[decisive].mean()) if decisive.any() else float("nan")
    rho = per_prompt_spearman(np.where(valid, rw, 0.0), sc, valid)
    defined = np.isfinite(rho)
    return {
        "accuracy": acc,
        "decisive_accuracy": decisive_acc,
        "num_decisive_pairs": float(decisive.sum()),
        "num_pairs": float(truth.size),
        "spearman": float(rho[defined].mean()) if defined.any() else float("nan"),
    }


def downstream_accuracy(
    chosen: np.ndarray,
    rejected: np.ndarray,
    eval_features: np.ndarray,
    eval_scores: np.ndarray,
    eval_mask: np.ndarray,
    *,
    seed: int,
    config: ProbeConfig | None = None,
) -> dict[str, float]:
    """Train a fresh probe on a dataset's pairs and score it on held-out prompts.

    Args:
        chosen, rejected: (B, D) features of the dataset's chosen and rejected responses.
        eval_features: (P, N, D) features of the held-out responses.
        eval_scores: (P, N) their judge scores (NaN where unknown).
        eval_mask: (P, N) True where a response exists.
        seed: seeds the probe's initialisation and minibatch order.

    Returns:
        ``accuracy``, ``spearman``, ``num_pairs`` (held-out pairs) and ``train_loss``.
    """
    feats = np.asarray(eval_features)
    if feats.ndim != 3:
        raise DownstreamInputError(f"eval_features: expected (P, N, D), got shape {feats.shape}")
    probe = BradleyTerryProbe(feats.shape[2], seed, config)
    loss = probe.fit(chosen, rejected)
    mask = np.asarray(eval_mask, dtype=bool)
    rewards = np.zeros(mask.shape, dtype=np.float64)
    if mask.any():
        rewards[mask] = probe.predict(feats[mask])
    out = heldout_pairwise_accuracy(rewards, eval_scores, mask)
    out["train_loss"] = loss
    return out
