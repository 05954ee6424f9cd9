"""Build text embedders by name: ``minilm`` (CPU default) or ``hf_last_token`` (any local model).

The run spec says which embedder produces the frozen features; the engine and the reward
service build it here. Both implement the ``Embedder`` protocol of ``reward/base.py`` (``name``
keys the feature cache, ``dim`` is the feature width).

* ``minilm``: all-MiniLM-L6-v2 sentence embeddings (https://arxiv.org/abs/1908.10084), 384-d;
* ``hf_last_token``: last-token hidden state of a local reward backbone, as in
  ActiveUltraFeedback (https://arxiv.org/abs/2603.09692).
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from prefloop.reward.embedding_common import EmbedderError
from prefloop.reward.last_token_embedder import HFLastTokenEmbedder
from prefloop.reward.minilm_embedder import MiniLMEmbedder

EmbedderKind = Literal["minilm", "hf_last_token"]

EMBEDDER_CLASSES: dict[str, type[MiniLMEmbedder] | type[HFLastTokenEmbedder]] = {
    "minilm": MiniLMEmbedder,
    "hf_last_token": HFLastTokenEmbedder,
}


def make_embedder(kind: EmbedderKind, **params: Any) -> MiniLMEmbedder | HFLastTokenEmbedder:
    """An embedder of ``kind`` built from ``params`` (the constructor's keyword arguments).

    Why: one factory for every entry point, rejecting unknown kinds and parameters with a
    message that lists what is accepted.
    """
    try:
        cls = EMBEDDER_CLASSES[kind]
    except KeyError:
        raise EmbedderError(
            f"unknown embedder kind {kind!r}; choose one of {sorted(EMBEDDER_CLASSES)}"
        ) from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise EmbedderError(
            f"unknown parameter(s) {unknown} for embedder {kind!r}; accepted: {sorted(accepted)}"
        )
    return cls(**params)


__all__ = [
    "EMBEDDER_CLASSES",
    "EmbedderError",
    "EmbedderKind",
    "HFLastTokenEmbedder",
    "MiniLMEmbedder",
    "make_embedder",
]
