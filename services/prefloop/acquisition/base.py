"""The acquisition contract: what every selection rule sees and what it returns.

A rule is a pure function ``rule(inputs, rng, **params) -> Selection``. It sees the reward
model's estimates for a batch of P prompts with up to N responses each (padded, with a mask)
and returns which pairs to send to the judge. Rules are vectorised over prompts: no Python loop
over prompts on the hot path. All randomness comes from the ``numpy.random.Generator`` passed
in, which the engine derives from the run's seed and the round, so the same seed gives the same
selections in every mode (embedded, services, cluster) and after a resume.

Two shapes of rule exist:

* per-prompt rules (DeltaUCB, DTS, ...) return exactly ``pairs_per_prompt`` pairs for every
  prompt (``Selection.prompt_index`` is then ``repeat(arange(P), k)``);
* batch rules (BGPM with cluster-diverse selection, ActiveRLHF DUO / DPP, AE-DPO, AE-Borda,
  uncertainty sampling, ADPO) pick a subset of candidate pairs across the whole batch, at most
  ``max_pairs`` of them, and may leave prompts without a pair.

Invariants every rule keeps: ``first != second`` for every pair; both indices point at real
(unmasked) responses; the result is a function of (inputs, rng state, params) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class AcquisitionError(ValueError):
    """A rule was asked for something it cannot do (unknown name, bad parameter, missing input)."""


@dataclass(frozen=True)
class AcquisitionInput:
    """The reward model's view of one batch, as arrays over (prompt, response).

    Attributes:
        mean: (P, N) predicted reward mu of each response.
        std: (P, N) epistemic std sigma of each response (ensemble std, epinet spread, ...).
        mask: (P, N) True where the response exists; padded slots must never be selected.
        samples: (P, N, S) per-member rewards (ensemble heads) or posterior samples; rules
            that need a joint posterior draw (InfoGain-style, ActiveRLHF's ensemble range) use it.
        features: (P, N, D) the frozen text features, for diversity-aware batch rules.
        pref_mean: (P, N, 2k) BGPM preference-embedding means (unit sphere), BGPM rules only.
        pref_var: (P, N, 2k) BGPM preference-embedding variances, BGPM rules only.
        judge_scores: (P, N) stored judge scores, NaN if unknown; only the static baselines that
            are defined on judge scores (UltraFeedback-binarize, MaxMin) read them.
        models: (P, N) model names as an object array ("" for padding), for DeltaQwen.
        ref_logp: (P, N) log-prob of each response under a frozen reference policy (AE-DPO,
            ADPO); zeros when there is no policy in the loop.
    """

    mean: np.ndarray
    std: np.ndarray
    mask: np.ndarray
    samples: np.ndarray | None = None
    features: np.ndarray | None = None
    pref_mean: np.ndarray | None = None
    pref_var: np.ndarray | None = None
    judge_scores: np.ndarray | None = None
    models: np.ndarray | None = None
    ref_logp: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.mean.shape[0]), int(self.mean.shape[1]))


@dataclass(frozen=True)
class Selection:
    """The pairs a rule picked, as parallel arrays of length M.

    Attributes:
        prompt_index: (M,) row of the batch each pair belongs to.
        first: (M,) index of the first response (no chosen/rejected meaning: the judge decides).
        second: (M,) index of the second response; never equal to ``first``.
        score: (M,) the rule's acquisition value for the pair (NaN where it has none).
        pseudo_label: (M,) int8: 0 = ask the judge; +1 = the rule labels ``first`` as the
            winner itself (DeltaQwen's identity label, ADPO's confident pseudo-label);
            -1 = it labels ``second`` as the winner.
        info: free-form diagnostics (e.g. how many DTS retries fell back to uniform).
    """

    prompt_index: np.ndarray
    first: np.ndarray
    second: np.ndarray
    score: np.ndarray
    pseudo_label: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.prompt_index)
        for name in ("first", "second", "score", "pseudo_label"):
            if len(getattr(self, name)) != n:
                raise AcquisitionError(
                    f"Selection.{name} has {len(getattr(self, name))} rows, expected {n}"
                )

    @property
    def size(self) -> int:
        return len(self.prompt_index)

    @staticmethod
    def per_prompt(
        first: np.ndarray,
        second: np.ndarray,
        score: np.ndarray | None = None,
        pseudo_label: np.ndarray | None = None,
        info: dict[str, Any] | None = None,
    ) -> Selection:
        """Build a selection from (P,) or (P, k) index arrays: k pairs for every prompt."""
        first = np.asarray(first, dtype=np.int64)
        second = np.asarray(second, dtype=np.int64)
        if first.ndim == 1:
            first, second = first[:, None], second[:, None]
        p, k = first.shape
        prompt_index = np.repeat(np.arange(p, dtype=np.int64), k)
        sc = np.full(p * k, np.nan) if score is None else np.asarray(score, float).reshape(-1)
        pl = (
            np.zeros(p * k, np.int8)
            if pseudo_label is None
            else np.asarray(pseudo_label, np.int8).reshape(-1)
        )
        return Selection(prompt_index, first.reshape(-1), second.reshape(-1), sc, pl, info or {})


class AcquisitionRule(Protocol):
    """A selection rule: pure, seeded, vectorised over prompts."""

    def __call__(
        self, inputs: AcquisitionInput, rng: np.random.Generator, **params: Any
    ) -> Selection: ...
