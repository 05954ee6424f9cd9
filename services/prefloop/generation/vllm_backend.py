"""Generate candidate responses with vLLM (optional extra: ``pip install prefloop[vllm]``).

The high-throughput path for real pools on GPUs, mirroring ActiveUltraFeedback's completion step
(vLLM, one model at a time, temperature 1.0, top-p 1.0, a seed per model;
https://arxiv.org/abs/2603.09692; vLLM: Kwon et al. 2023, https://arxiv.org/abs/2309.06180).
vLLM is imported only when a :class:`VLLMGenerator` is created, so the rest of prefloop works
without it. Every request carries its own seed from
:func:`~prefloop.generation.base.sample_seed` of (run seed, model, prompt id), so an answer does
not depend on batching. The request plan (:func:`build_requests`) is pure and testable without
vLLM installed.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from prefloop.data.records import Message, PromptItem
from prefloop.generation.base import (
    check_models,
    check_sampling,
    generate_model_by_model,
    sample_seed,
)

INSTALL_HINT = (
    "VLLMGenerator needs vLLM, an optional dependency: install it with "
    "`pip install prefloop[vllm]` (Linux with a CUDA GPU), or use TransformersGenerator"
)


@dataclass(frozen=True)
class VLLMRequest:
    """One prompt to send to one model: the chat messages, the flat text, the sampling settings.

    ``sampling`` holds the keyword arguments of ``vllm.SamplingParams``.
    """

    prompt_id: str
    messages: list[Message]
    prompt_text: str
    sampling: dict[str, Any] = field(default_factory=dict)


def sampling_kwargs(
    model: str,
    prompt_id: str,
    seed: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` arguments of one (model, prompt): one sample, its own seed.

    Why: a per-request seed makes vLLM's sampling reproducible per answer rather than per batch.
    """
    return {
        "n": 1,
        "max_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "seed": sample_seed(seed, model, prompt_id),
    }


def build_requests(
    items: list[PromptItem],
    model: str,
    seed: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> list[VLLMRequest]:
    """The requests for ``model``: one per item, in item order."""
    return [
        VLLMRequest(
            prompt_id=item.prompt_id,
            messages=item.prompt_messages(),
            prompt_text=item.prompt_text(),
            sampling=sampling_kwargs(
                model,
                item.prompt_id,
                seed,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
            ),
        )
        for item in items
    ]


class VLLMGenerator:
    """A :class:`~prefloop.generation.base.ResponseGenerator` over vLLM engines.

    Args:
        models: ``{name: model path or id}``; ``name`` becomes ``Response.model``.
        max_new_tokens / temperature / top_p: sampling settings (temperature 0 is greedy).
        tensor_parallel_size / gpu_memory_utilization / max_model_len: passed to ``vllm.LLM``.
        chat_template_kwargs: passed to the chat template, e.g. ``{"enable_thinking": False}``.
        engine_kwargs: further ``vllm.LLM`` keyword arguments.

    Raises:
        ImportError: vLLM is not installed (the message says how to install it).
    """

    def __init__(
        self,
        models: dict[str, str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self._vllm: Any = vllm
        self.models = check_models(models)
        temperature, top_p = check_sampling(max_new_tokens, temperature, top_p)
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.engine_args: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            **({"max_model_len": max_model_len} if max_model_len is not None else {}),
            **(engine_kwargs or {}),
        }
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.name = "vllm"

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        """Append one sampled response per model to every item (existing responses are kept).

        Models are loaded one at a time and released before the next, as GPU memory rarely
        holds two. Chat models get their chat template; others get the flat prompt text.
        """

        def answer_with(name: str, path: str) -> dict[str, str]:
            llm = self._vllm.LLM(model=path, seed=seed, **self.engine_args)
            try:
                requests = build_requests(
                    items,
                    name,
                    seed,
                    max_new_tokens=self.max_new_tokens,
                    temperature=self.temperature,
                    top_p=self.top_p,
                )
                params = [self._vllm.SamplingParams(**r.sampling) for r in requests]
                tokenizer = llm.get_tokenizer()
                if getattr(tokenizer, "chat_template", None):
                    outputs = llm.chat(
                        [r.messages for r in requests],
                        sampling_params=params,
                        use_tqdm=False,
                        chat_template_kwargs=self.chat_template_kwargs or None,
                    )
                else:
                    outputs = llm.generate(
                        [r.prompt_text for r in requests], sampling_params=params, use_tqdm=False
                    )
                return {
                    r.prompt_id: str(o.outputs[0].text).strip()
                    for r, o in zip(requests, outputs, strict=True)
                }
            finally:
                del llm
                gc.collect()

        return generate_model_by_model(items, seed, self.models, answer_with)
