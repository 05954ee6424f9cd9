"""Generation: fill each prompt's pool of candidate responses.

Backends implement :class:`~prefloop.generation.base.ResponseGenerator`
(``generate(items, *, seed) -> items``):

- :class:`~prefloop.generation.precomputed.PrecomputedGenerator`: responses are already stored;
- :class:`~prefloop.generation.base.PoolGenerator`: one backend per model of the pool, each with
  its own sampling settings (:class:`~prefloop.generation.base.Sampling`):
  :class:`~prefloop.generation.transformers_backend.TransformersModel` (local causal LMs),
  :class:`~prefloop.generation.vllm_backend.VLLMModel` (vLLM, ``pip install prefloop[vllm]``) and
  :class:`~prefloop.generation.openai_backend.OpenAIModel` (any OpenAI-compatible endpoint);
- :mod:`~prefloop.generation.system_prompts`: UltraFeedback's system prompt per principle.

A (model, prompt) that fails gives no response and is recorded in
``PromptItem.generation_failures``; :func:`~prefloop.generation.base.generation_metrics` counts
failures and tokens for the round metrics. The model backends are imported from their modules,
so that importing this package never loads torch, vLLM or aiohttp.
"""

from prefloop.generation.base import (
    GenerationError,
    PoolGenerator,
    ResponseGenerator,
    Sampling,
    generation_metrics,
    sample_seed,
)
from prefloop.generation.precomputed import PrecomputedGenerator

__all__ = [
    "GenerationError",
    "PoolGenerator",
    "PrecomputedGenerator",
    "ResponseGenerator",
    "Sampling",
    "generation_metrics",
    "sample_seed",
]
