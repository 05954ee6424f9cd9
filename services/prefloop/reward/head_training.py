"""Shared plumbing of the uncertainty heads: input checks, minibatch order, losses, schedules.

Every head (anchored ensemble, epinet, Bayesian GPM) trains on frozen (chosen, rejected) feature
pairs with the same conventions, kept here so they cannot drift apart:

* inputs are validated once, with errors that name the argument and the shape at fault;
* ``train_steps`` runs exactly ``max_steps`` optimiser steps over successive shuffled passes of
  the given pairs (the last batch of a pass may be short), drawn from a ``torch.Generator``
  seeded with ``generator_seed`` - so the same call gives bitwise-identical weights;
* the learning rate follows a cosine decay that restarts with every call, as in the
  ActiveUltraFeedback loop (transformers recreates its scheduler per ``train()``, while the
  AdamW moments persist; see ``../shared/specs/activeuf.md`` section 2).

References: Bradley & Terry (1952) for the pairwise likelihood; ActiveUltraFeedback
(https://arxiv.org/abs/2603.09692) for the anchored, centred loss and the per-round schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

LrSchedule = Literal["cosine", "constant"]

PREDICT_CHUNK_ROWS = 4096
"""Rows per forward pass in ``predict``: bounds memory for (K, M, hidden) activations."""


class HeadInputError(ValueError):
    """A head was given features or training arguments of the wrong shape, type or value."""


def as_feature_tensor(features: np.ndarray, input_dim: int, *, name: str) -> torch.Tensor:
    """(M, D) float32 tensor from a numpy array, checked for rank, width and finiteness.

    Why: heads are fed by caches and services; a wrong width or a NaN must fail loudly at the
    boundary instead of silently producing NaN rewards that an acquisition rule would act on.
    """
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise HeadInputError(
            f"{name}: expected a 2-d (M, {input_dim}) array, got shape {arr.shape}"
        )
    if arr.shape[1] != input_dim:
        raise HeadInputError(
            f"{name}: feature width {arr.shape[1]} does not match the head's input_dim {input_dim}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise HeadInputError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).any(dim=1).nonzero()[0, 0])
        raise HeadInputError(f"{name}: row {bad} contains NaN or infinite values")
    return tensor


def check_pairs(
    chosen: np.ndarray, rejected: np.ndarray, input_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated (B, D) tensors of chosen and rejected features with matching B >= 1."""
    c = as_feature_tensor(chosen, input_dim, name="chosen")
    r = as_feature_tensor(rejected, input_dim, name="rejected")
    if c.shape[0] != r.shape[0]:
        raise HeadInputError(
            f"chosen has {c.shape[0]} rows but rejected has {r.shape[0]}: pairs must align"
        )
    if c.shape[0] == 0:
        raise HeadInputError("chosen/rejected: at least one pair is needed to train")
    return c, r


def check_train_args(max_steps: int, batch_size: int, anchor_weight: float) -> None:
    """Raise on a non-positive step count or batch size, or a negative / non-finite anchor."""
    if int(max_steps) < 0:
        raise HeadInputError(f"max_steps must be >= 0, got {max_steps}")
    if int(batch_size) < 1:
        raise HeadInputError(f"batch_size must be >= 1, got {batch_size}")
    if not math.isfinite(anchor_weight) or anchor_weight < 0:
        raise HeadInputError(f"anchor_weight must be finite and >= 0, got {anchor_weight}")


def minibatch_indices(
    num_pairs: int, batch_size: int, num_steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Yield ``num_steps`` index batches from successive random permutations of the pairs.

    Why: one pass (epoch) over the sampled replay data per round is the reference recipe; when a
    caller asks for more steps than one pass holds, a fresh permutation starts, so every pair is
    seen equally often. All randomness comes from ``generator``.
    """
    done = 0
    while done < num_steps:
        perm = torch.randperm(num_pairs, generator=generator)
        for start in range(0, num_pairs, batch_size):
            if done >= num_steps:
                return
            yield perm[start : start + batch_size]
            done += 1


def scheduled_lr(base_lr: float, step: int, total_steps: int, schedule: LrSchedule) -> float:
    """Learning rate of ``step`` (0-based) in a round of ``total_steps``.

    Cosine decays from ``base_lr`` at step 0 towards 0 (transformers' ``get_cosine_schedule``
    with no warm-up); constant keeps ``base_lr``.
    """
    if schedule == "constant" or total_steps <= 0:
        return base_lr
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (the per-step schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def bradley_terry_nll(margin: torch.Tensor) -> torch.Tensor:
    """Elementwise -log sigmoid(margin), computed stably as softplus(-margin)."""
    return F.softplus(-margin)


def centred_bradley_terry(
    rewards: torch.Tensor,
    num_pairs: int,
    center_coefficient: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-member Bradley-Terry loss plus reward centring of (S, 2B) rewards, and its parts.

    Why: the anchored ensemble and the epinet share ActiveUltraFeedback's data loss
    (https://arxiv.org/abs/2603.09692): ``mean -log sigmoid(r(c) - r(r))`` over members and
    pairs, plus ``center_coefficient * mean (r(c) + r(r))^2``. ``rewards`` holds the chosen
    responses in its first ``num_pairs`` columns and the rejected ones after them. ``weights``
    (S, B), when given, weigh each member's pairs (a bootstrap): a weighted mean per member.
    """
    r_c, r_r = rewards[:, :num_pairs], rewards[:, num_pairs:]
    nll = bradley_terry_nll(r_c - r_r)
    if weights is None:
        bt = nll.mean()
    else:
        bt = ((weights * nll).sum(1) / weights.sum(1).clamp_min(1e-12)).mean()
    centre = ((r_c + r_r) ** 2).mean()
    loss = bt + center_coefficient * centre
    accuracy = (r_c.mean(0) > r_r.mean(0)).float().mean()
    return loss, {"bt_loss": bt, "center_loss": centre, "train_accuracy": accuracy}


def forward_in_chunks(
    forward: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor, num_outputs: int
) -> torch.Tensor:
    """(S, M) outputs of ``forward`` on (M, D) features, run ``PREDICT_CHUNK_ROWS`` rows at a time.

    Why: bounds the memory of (S, M, hidden) activations when a head scores a large pool;
    ``num_outputs`` is S, the shape of the empty result for M = 0.
    """
    chunks = [
        forward(features[i : i + PREDICT_CHUNK_ROWS])
        for i in range(0, features.shape[0], PREDICT_CHUNK_ROWS)
    ]
    if not chunks:
        return torch.zeros(num_outputs, 0)
    return torch.cat(chunks, dim=1)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (reduced to the 64-bit range)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) % (2**63))
    return gen


def check_state_config(kind: str, expected: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Raise if a saved state belongs to another head kind or another configuration.

    Why: loading an ensemble's weights into an epinet, or a 384-d head into a 2560-d one, would
    otherwise fail deep inside torch with a message that names neither.
    """
    if state.get("kind") != kind:
        raise HeadInputError(f"state is for head kind {state.get('kind')!r}, not {kind!r}")
    saved = dict(state.get("config", {}))
    diffs = {k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v}
    if diffs:
        detail = ", ".join(f"{k}: saved {a!r} != this head's {b!r}" for k, (a, b) in diffs.items())
        raise HeadInputError(f"state config does not match this {kind} head ({detail})")


def std_over_members(samples: torch.Tensor) -> torch.Tensor:
    """Unbiased (N-1) std over the last axis, as ``torch.std`` in the reference ensemble."""
    if samples.numel() == 0:
        return torch.zeros(samples.shape[:-1], dtype=samples.dtype)
    return samples.std(dim=-1, unbiased=True)
