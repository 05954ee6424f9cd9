"""One registry of acquisition rules by name.

Rules register themselves with ``@register(...)`` at import time; ``get_rule(name)`` returns the
``RuleInfo`` (the function plus what it needs), and ``select(name, inputs, rng, **params)`` runs
it and checks the invariants every rule promises (no self-pairs, no padded responses). Importing
``prefloop.acquisition`` loads every rule module, so the registry is always complete.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from prefloop.acquisition.base import AcquisitionError, AcquisitionInput, Selection
from prefloop.acquisition.pool_scope import PoolValue

RuleKind = Literal["per_prompt", "batch"]
Truncation = Literal["random", "score"]
"""How the engine cuts a selection that exceeds the budget: ``score`` keeps the highest
``Selection.score`` first (the rule's score ranks pairs across the whole batch, higher = more
informative, so the cut equals asking the rule for fewer pairs); ``random`` keeps a seeded random
subset (the score is missing, signed, or only ranks pairs within one prompt)."""
Need = Literal["samples", "features", "pref", "judge_scores", "models", "ref_logp"]

RuleFn = Callable[..., Selection]


@dataclass(frozen=True)
class RuleInfo:
    """A registered rule and its metadata.

    Attributes:
        name: registry key, snake_case (``delta_ucb``).
        fn: the rule, ``fn(inputs, rng, **params) -> Selection``.
        kind: ``per_prompt`` (pairs for every prompt) or ``batch`` (a subset of the batch).
        needs: optional inputs the rule cannot run without.
        paper: link to the method's paper.
        summary: one line for ``prefloop run --help`` and the docs.
        truncation: how a budget cut keeps pairs (see ``Truncation``).
    """

    name: str
    fn: RuleFn
    kind: RuleKind
    needs: frozenset[str]
    paper: str
    summary: str
    truncation: Truncation = "random"

    @property
    def pool_value(self) -> PoolValue | None:
        """How pool scope values a prompt for this rule (``POOL_VALUES``); None: refused."""
        if self.name in POOL_VALUES:
            return POOL_VALUES[self.name]
        return "batch" if self.kind == "batch" and "max_pairs" in self.parameters() else None

    def parameters(self) -> dict[str, Any]:
        """The rule's tunable parameters and their defaults (keyword-only args of ``fn``)."""
        return dict(_keyword_defaults(self.fn))


@functools.cache
def _keyword_defaults(fn: RuleFn) -> dict[str, Any]:
    """``fn``'s keyword-only parameters and defaults, read once (``select`` checks every call)."""
    sig = inspect.signature(fn)
    return {
        k: p.default for k, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


_RULES: dict[str, RuleInfo] = {}

POOL_VALUES: dict[str, PoolValue] = {
    "random": "uniform",
    "ultrafeedback": "uniform",
    "delta_qwen": "uniform",
    "maxmin": "pair_score",
    "delta_ucb": "pair_score",
    "delta_quantile": "pair_score",
    "infomax": "pair_score",
    "infogain": "pair_score",
    "drts": "thompson_gap",
    "dts": "duel_ambiguity",
    "maxmin_lcb": "duel_ambiguity",
}
"""Pool scope (``spec.acquisition.scope: pool``): the acquisition value of a prompt under each
per-prompt rule (``pool_scope.prompt_values``; the reasoning per rule is in docs/methods.md).
Batch rules that take ``max_pairs`` rank the candidate pool themselves (``batch``); a rule in
neither group (ADPO) is refused in pool scope. A test keeps every per-prompt rule listed."""


SOURCE_MODELS_HURT: frozenset[str] = frozenset(
    {
        "activerlhf_dpp",
        "activerlhf_duo",
        "adpo",
        "ae_dpo",
        "dts",
        "infogain",
        "infomax",
        "maxmin_lcb",
        "us_dpo",
    }
)
"""Rules measured worse with ``rewardModel.sourceModels`` than without (docs/benchmarks.md,
"Source-model strengths"): they seek close or uncertain pairs, and the strengths make the pairs
they find closer still. ``prefloop run`` and ``validate`` warn when the two are combined."""


def register(
    name: str,
    *,
    kind: RuleKind = "per_prompt",
    needs: tuple[Need, ...] = (),
    paper: str,
    summary: str,
    truncation: Truncation = "random",
) -> Callable[[RuleFn], RuleFn]:
    """Class-free registration decorator: ``@register("delta_ucb", paper=..., summary=...)``."""

    def deco(fn: RuleFn) -> RuleFn:
        if name in _RULES:
            raise AcquisitionError(f"acquisition rule {name!r} is registered twice")
        _RULES[name] = RuleInfo(name, fn, kind, frozenset(needs), paper, summary, truncation)
        return fn

    return deco


def rule_names() -> list[str]:
    """All registered rule names, sorted."""
    _load_all()
    return sorted(_RULES)


def get_rule(name: str) -> RuleInfo:
    """Look a rule up by name; the error lists the names that exist."""
    _load_all()
    try:
        return _RULES[name]
    except KeyError:
        raise AcquisitionError(
            f"unknown acquisition method {name!r}; choose one of: {', '.join(sorted(_RULES))}"
        ) from None


def check_params(name: str, params: dict[str, Any]) -> None:
    """Reject parameters the rule does not take, naming them and the ones it does."""
    info = get_rule(name)
    allowed = _keyword_defaults(info.fn)
    unknown = sorted(set(params) - allowed.keys())
    if unknown:
        raise AcquisitionError(
            f"acquisition method {name!r} has no parameter(s) {unknown}; "
            f"it takes: {sorted(allowed) or 'none'}"
        )


_MISSING_HINT = {
    "samples": "a reward head that returns per-member samples (ensemble, epinet)",
    "features": "text features (any embedder)",
    "pref": "rewardModel.head.kind: bgpm",
    "judge_scores": "stored judge scores in the data (responses[].score)",
    "models": "model names on every response",
    "ref_logp": "reference log-probs (a policy in the loop)",
}


def select(
    name: str, inputs: AcquisitionInput, rng: np.random.Generator, **params: Any
) -> Selection:
    """Run rule ``name`` and verify its output: pairs of two distinct, real responses."""
    info = get_rule(name)
    check_params(name, params)
    for need in sorted(info.needs):
        field_name = {"pref": "pref_mean"}.get(need, need)
        if getattr(inputs, field_name) is None:
            raise AcquisitionError(
                f"acquisition method {name!r} needs {need}: configure {_MISSING_HINT[need]}"
            )
    if inputs.mask.ndim != 2 or inputs.mean.shape != inputs.mask.shape:
        raise AcquisitionError(
            f"mean {inputs.mean.shape} and mask {inputs.mask.shape} must both be (P, N)"
        )
    full = bool(np.all(inputs.mask))  # no padding: the per-row checks below are not needed
    if inputs.mask.shape[0] and not (full and inputs.mask.shape[1] >= 2):
        counts = np.count_nonzero(inputs.mask, axis=1)
        if int(counts.min()) < 2:
            bad = int(np.argmin(counts))
            raise AcquisitionError(f"prompt row {bad} has fewer than 2 responses; nothing to pair")
    sel = info.fn(inputs, rng, **params)
    _check_selection(name, sel, inputs.mask, full)
    return sel


def _check_selection(name: str, sel: Selection, mask: np.ndarray, full: bool) -> None:
    if sel.size == 0:
        return
    if np.any(sel.first == sel.second):
        raise AcquisitionError(f"rule {name!r} paired a response with itself (a bug in the rule)")
    n = mask.shape[1]
    lowest = min(int(sel.first.min()), int(sel.second.min()))
    highest = max(int(sel.first.max()), int(sel.second.max()))
    if full and lowest >= 0 and highest < n:  # no padding: every in-range index is real
        return
    ok = mask[sel.prompt_index, sel.first] & mask[sel.prompt_index, sel.second]
    if not np.all(ok):
        raise AcquisitionError(f"rule {name!r} selected a padded (missing) response")


_LOADED = False


def _load_all() -> None:
    """Import every rule module once so that all ``@register`` calls have run."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import pkgutil

    import prefloop.acquisition as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"base", "registry"} and not mod.name.startswith("_"):
            importlib.import_module(f"prefloop.acquisition.{mod.name}")
