"""The generation contract: fill each prompt's pool of candidate responses.

Active preference learning picks pairs out of a pool of answers per prompt, written by several
LLMs (ActiveUltraFeedback uses ~30 open models, one response each; https://arxiv.org/abs/2603.09692).
A :class:`ResponseGenerator` turns prompt items into items with their responses filled. Backends:

- :class:`~prefloop.generation.precomputed.PrecomputedGenerator`: the responses are already in the
  data (the research setting), nothing is generated;
- :class:`~prefloop.generation.transformers_backend.TransformersGenerator`: local causal LMs via
  Hugging Face transformers (CPU or one GPU);
- :class:`~prefloop.generation.vllm_backend.VLLMGenerator`: the same through vLLM (optional extra).

Sampling is reproducible: every (run seed, model, prompt) gets its own seed from
:func:`sample_seed`, so a response does not depend on batching or on which other prompts are in
the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from prefloop.data.records import PromptItem, Response, stable_id

MAX_SAMPLE_SEED = 2**63 - 1


class GenerationError(RuntimeError):
    """Responses could not be produced (missing model, prompt too long, too few responses, ...)."""


class ResponseGenerator(Protocol):
    """Anything that fills prompts with candidate responses."""

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        """The items, in order, with their responses filled (existing responses are kept)."""
        ...


def sample_seed(seed: int, model: str, prompt_id: str) -> int:
    """The sampling seed of one (run seed, model, prompt): a 63-bit integer, stable across runs.

    Why: seeding per response rather than per batch makes every answer reproducible on its own,
    whatever the batch size or the order the prompts arrive in.
    """
    return int(stable_id("generate", seed, model, prompt_id), 16) & MAX_SAMPLE_SEED


def check_models(models: Mapping[str, str]) -> dict[str, str]:
    """Validate a ``{name: model path or id}`` mapping and return it as a plain dict."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of model name -> model path")
    out: dict[str, str] = {}
    for name, path in models.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"model names must be non-empty strings, got {name!r}")
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"model {name!r}: the path must be a non-empty string, got {path!r}")
        out[name] = path
    return out


def check_seed(seed: int) -> None:
    """Reject seeds that are not non-negative integers."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def check_sampling(max_new_tokens: int, temperature: float, top_p: float) -> tuple[float, float]:
    """Validate the shared sampling settings; return ``(temperature, top_p)`` as floats.

    Why: every backend takes the same length bound, temperature (0 = greedy) and nucleus mass
    (Holtzman et al. 2020, https://arxiv.org/abs/1904.09751) and must reject the same bad values.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if not (isinstance(top_p, int | float) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    return float(temperature), float(top_p)


def check_unique_prompt_ids(items: list[PromptItem]) -> None:
    """Generated texts are keyed by prompt id, so the ids of one call must be unique."""
    seen: set[str] = set()
    for item in items:
        if item.prompt_id in seen:
            raise GenerationError(f"prompt_id {item.prompt_id!r} appears twice in one call")
        seen.add(item.prompt_id)


def append_generated(
    items: list[PromptItem], texts: Mapping[str, Mapping[str, str]]
) -> list[PromptItem]:
    """Append one unscored :class:`Response` per model to every item.

    Args:
        items: the prompts, in order.
        texts: ``{model name: {prompt_id: generated text}}``; models are appended in this order.

    Why: both backends produce per-model texts and must assemble them the same way.
    """
    out: list[PromptItem] = []
    for item in items:
        new: list[Response] = []
        for model, by_prompt in texts.items():
            if item.prompt_id not in by_prompt:
                raise GenerationError(
                    f"model {model!r} produced no response for prompt {item.prompt_id!r}"
                )
            new.append(Response(model=model, text=by_prompt[item.prompt_id], score=None))
        out.append(replace(item, responses=(*item.responses, *new)))
    return out


def generate_model_by_model(
    items: list[PromptItem],
    seed: int,
    models: Mapping[str, str],
    answer_with: Callable[[str, str], dict[str, str]],
) -> list[PromptItem]:
    """Check the call, then append one response per model, asking one model at a time.

    Why: both backends load a model, answer every prompt, release it and go on to the next
    (memory rarely holds two); ``answer_with(name, path)`` returns ``{prompt_id: text}``.
    """
    check_seed(seed)
    check_unique_prompt_ids(items)
    if not items:
        return []
    texts = {name: answer_with(name, path) for name, path in models.items()}
    return append_generated(items, texts)
