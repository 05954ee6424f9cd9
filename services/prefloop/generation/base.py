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

A pool is a list of per-model backends (:class:`ModelBackend`): each model of the spec's pool
has its own engine (transformers, vLLM or an OpenAI-compatible endpoint, ``pool.py``), its own
sampling settings (:class:`Sampling`) and answers every prompt with a :class:`Generated` (the
text and its token counts) or a :class:`GenerationFailure`. A failure yields no response for
that model on that prompt, never a stand-in text; the prompt records the model in
``PromptItem.generation_failures`` and the round metrics count it (:func:`generation_metrics`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from prefloop.data.records import Message, PromptItem, Response, stable_id

log = logging.getLogger("prefloop.generation")

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


def flatten_messages(messages: list[Message]) -> str:
    """Chat messages as the plain text a model without a chat template reads.

    A lone user message is its bare content (so a plain prompt stays itself); otherwise one
    ``role: content`` line per message, as :meth:`PromptItem.prompt_text` flattens them.
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return messages[0]["content"]
    return PromptItem("", tuple(messages)).prompt_text()


@dataclass(frozen=True)
class Sampling:
    """One model's sampling settings: length bound, temperature (0 = greedy), nucleus mass and
    an optional seed of its own (ActiveUltraFeedback gives every model a fixed seed).

    Why per model: pools mix small local models and hosted ones with different defaults, and a
    judge-free comparison needs some models greedy and others sampled.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        check_sampling(self.max_new_tokens, self.temperature, self.top_p)
        if self.seed is not None:
            check_seed(self.seed)

    def request_seed(self, seed: int, model: str, prompt_id: str) -> int:
        """The sampling seed of one answer: from the model's own seed when set, else the call's."""
        return sample_seed(self.seed if self.seed is not None else seed, model, prompt_id)


@dataclass(frozen=True)
class Generated:
    """One model's answer to one prompt, with what it cost in tokens (None: not reported)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    principle: str | None = None


@dataclass(frozen=True)
class GenerationFailure:
    """A (model, prompt) that produced no answer: why (``kind``) and a one-line ``message``."""

    kind: str
    message: str


Answer = Generated | GenerationFailure


class ModelBackend(Protocol):
    """One model of the pool, behind whatever engine serves it."""

    name: str

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        """``{prompt_id: answer}`` for every item: a :class:`Generated` or a failure.

        Raises only for faults that concern the whole model (it cannot be loaded); a fault of
        one prompt is that prompt's :class:`GenerationFailure`.
        """
        ...


def append_generated(
    items: list[PromptItem], texts: Mapping[str, Mapping[str, str | Answer]]
) -> list[PromptItem]:
    """Append one unscored :class:`Response` per model to every item; record failures.

    Args:
        items: the prompts, in order.
        texts: ``{model name: {prompt_id: text or answer}}``; models are appended in this order.
            A :class:`GenerationFailure` adds no response and names the model in the item's
            ``generation_failures``.

    Why: every backend produces per-model answers and they must be assembled the same way.

    Raises:
        GenerationError: a model has no entry at all for a prompt (a backend bug, not a fault).
    """
    out: list[PromptItem] = []
    for item in items:
        new: list[Response] = []
        failed: list[str] = []
        for model, by_prompt in texts.items():
            if item.prompt_id not in by_prompt:
                raise GenerationError(
                    f"model {model!r} produced no response for prompt {item.prompt_id!r}"
                )
            answer = by_prompt[item.prompt_id]
            if isinstance(answer, GenerationFailure):
                failed.append(model)
                continue
            if isinstance(answer, str):
                answer = Generated(answer)
            new.append(
                Response(
                    model=model,
                    text=answer.text,
                    score=None,
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                    principle=answer.principle,
                )
            )
        out.append(
            replace(
                item,
                responses=(*item.responses, *new),
                generation_failures=(*item.generation_failures, *failed),
            )
        )
    return out


class PoolGenerator:
    """A :class:`ResponseGenerator` over per-model backends, asked one model at a time.

    Why one at a time: local engines load a model, answer every prompt and release it (memory
    rarely holds two); HTTP models run their own prompts concurrently inside ``answer``.
    """

    name = "pool"

    def __init__(self, backends: list[ModelBackend]) -> None:
        if not backends:
            raise ValueError("a pool needs at least one model")
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        self.backends = list(backends)

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        """Append one response per model (or record its failure) to every item, in pool order."""
        check_seed(seed)
        check_unique_prompt_ids(items)
        if not items:
            return []
        answers: dict[str, dict[str, Answer]] = {}
        for backend in self.backends:
            answers[backend.name] = backend.answer(items, seed=seed)
            failures = [
                a for a in answers[backend.name].values() if isinstance(a, GenerationFailure)
            ]
            if failures:
                log.warning(
                    "model %s: %d of %d prompt(s) got no response; first: %s",
                    backend.name,
                    len(failures),
                    len(items),
                    failures[0].message,
                )
        return append_generated(items, answers)


def generation_metrics(items: list[PromptItem]) -> dict[str, int]:
    """Round counters of the generation step: responses in the round's pool, (model, prompt)
    failures, and the prompt / completion tokens the responses cost (as their backends report).

    Why from the items: the counts then hold whichever process generated them.
    """
    responses = [r for it in items for r in it.responses]
    return {
        "pool_responses": len(responses),
        "generation_failures": sum(len(it.generation_failures) for it in items),
        "generation_prompt_tokens": sum(r.prompt_tokens or 0 for r in responses),
        "generation_completion_tokens": sum(r.completion_tokens or 0 for r in responses),
    }
