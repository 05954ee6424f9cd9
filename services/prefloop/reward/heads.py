"""Build reward heads by name: the one place that maps a config string to a head class.

The run spec names a head (``ensemble``, ``epinet``, ``bgpm``) and its parameters; the engine,
the reward service and the trainer service all go through ``make_head`` so that they build the
same head from the same manifest, and through ``head_from_state`` to rebuild one from a
checkpoint without knowing its class.

Methods: anchored ensemble (ActiveUltraFeedback, https://arxiv.org/abs/2603.09692), epinet
(Osband et al., https://arxiv.org/abs/2107.08924), Bayesian GPM (https://arxiv.org/abs/2410.02197).
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, cast

from prefloop.reward.bgpm import BGPMHead
from prefloop.reward.ensemble import EnsembleHead
from prefloop.reward.epinet import EpinetHead
from prefloop.reward.head_training import HeadInputError
from prefloop.reward.torch_head import TorchRewardHead

HeadKind = Literal["ensemble", "epinet", "bgpm"]

HEAD_CLASSES: dict[str, type[EnsembleHead] | type[EpinetHead] | type[BGPMHead]] = {
    "ensemble": EnsembleHead,
    "epinet": EpinetHead,
    "bgpm": BGPMHead,
}


def make_head(kind: HeadKind, input_dim: int, seed: int, **params: Any) -> TorchRewardHead:
    """A fresh head of ``kind`` for ``input_dim``-wide features, initialised from ``seed``.

    Why: one factory keeps the manifest's names and the classes in step, and rejects unknown
    kinds or parameters with a message that lists what is accepted.
    """
    try:
        cls = HEAD_CLASSES[kind]
    except KeyError:
        raise HeadInputError(
            f"unknown reward head kind {kind!r}; choose one of {sorted(HEAD_CLASSES)}"
        ) from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "input_dim", "seed"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise HeadInputError(
            f"unknown parameter(s) {unknown} for reward head {kind!r}; accepted: {sorted(accepted)}"
        )
    if "epinet_hidden_dims" in params:
        params["epinet_hidden_dims"] = tuple(params["epinet_hidden_dims"])
    if "adam_betas" in params:
        betas = tuple(params["adam_betas"])
        params["adam_betas"] = (float(betas[0]), float(betas[1]))
    return cls(input_dim, seed, **params)


def head_from_state(state: dict[str, Any]) -> TorchRewardHead:
    """Rebuild a head (kind, config, weights, optimiser) from its ``state_dict``."""
    kind = state.get("kind")
    if kind not in HEAD_CLASSES:
        raise HeadInputError(f"state has unknown head kind {kind!r}")
    config = dict(state["config"])
    input_dim = int(config.pop("input_dim"))
    head = make_head(cast(HeadKind, kind), input_dim, int(state["seed"]), **config)
    head.load_state_dict(state)
    return head
