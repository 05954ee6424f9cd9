"""Build a judge from its name and parameters, as written in a run manifest.

Why a registry: the manifest says ``judge: {kind: oracle, mode: bradley_terry, temperature: 0.5}``
and the engine must turn that into an object, rejecting unknown kinds and misspelt parameters
with a message that lists what is accepted, before any budget is spent. The live kinds
(``rubric``, ``pairwise``, ``reward_model``) take their model objects as parameters;
:mod:`prefloop.judge.from_spec` builds those from the spec.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from prefloop.judge.base import Judge
from prefloop.judge.oracle import StoredScoreOracle
from prefloop.judge.pairwise import PairwiseJudge
from prefloop.judge.reward_model import RewardModelJudge
from prefloop.judge.rubric import RubricJudge

JudgeKind = Literal["oracle", "rubric", "pairwise", "reward_model"]

_FACTORIES: dict[str, Callable[..., Judge]] = {
    "oracle": StoredScoreOracle,
    "rubric": RubricJudge,
    "pairwise": PairwiseJudge,
    "reward_model": RewardModelJudge,
}


def judge_kinds() -> tuple[str, ...]:
    """The judge kinds :func:`make_judge` knows."""
    return tuple(sorted(_FACTORIES))


def judge_parameters(kind: str) -> tuple[str, ...]:
    """The keyword parameters a judge kind accepts (besides ``seed``)."""
    factory = _factory(kind)
    return tuple(
        name
        for name, p in inspect.signature(factory).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "seed"
    )


def _factory(kind: str) -> Callable[..., Judge]:
    try:
        return _FACTORIES[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown judge kind {kind!r}; known kinds: {', '.join(judge_kinds())}"
        ) from None


def make_judge(kind: JudgeKind, *, seed: int, **params: Any) -> Judge:
    """A judge of ``kind`` configured with ``params`` and the run ``seed``.

    Why: one place that validates judge configuration for the CLI, the engine and the services.

    Raises:
        ValueError: ``kind`` is unknown, a parameter is not accepted by that kind (the message lists
            the accepted ones), or a parameter value is invalid.
    """
    factory = _factory(kind)
    accepted = judge_parameters(kind)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"judge kind {kind!r} does not accept parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    return factory(seed=seed, **params)
