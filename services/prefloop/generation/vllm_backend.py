"""Generate candidate responses with vLLM's offline engine (extra: ``pip install prefloop[vllm]``).

The high-throughput path for real pools on GPUs, mirroring ActiveUltraFeedback's completion step
(vLLM, one model at a time, temperature 1.0, top-p 1.0, a seed per model;
https://arxiv.org/abs/2603.09692; vLLM: Kwon et al. 2023, https://arxiv.org/abs/2309.06180).

Every model of the pool gets an engine of its own (:class:`VLLMModel`) with its own options
(:class:`VLLMEngineOptions`: tensor parallel size, GPU memory utilisation, maximum model length;
released after each batch so the next model fits, unless ``keep_loaded``). vLLM is imported only
when a :class:`VLLMModel` is created, so the rest of prefloop works without it. Every request
carries its own seed (:meth:`~prefloop.generation.base.Sampling.request_seed` of (seed, model,
prompt id)), so an answer does not depend on batching.

The request plan (:func:`build_requests`) and the reading of vLLM's ``RequestOutput`` objects
(:func:`parse_outputs`: text, prompt and completion token counts) are pure and tested without
vLLM. If the engine rejects a whole batch (e.g. one prompt longer than ``max_model_len``), the
prompts are retried one by one, so that only the offending prompts get no response.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefloop.data.records import Message, PromptItem
from prefloop.generation.base import (
    Answer,
    Generated,
    GenerationFailure,
    PoolGenerator,
    Sampling,
    check_models,
    flatten_messages,
)
from prefloop.generation.system_prompts import SystemPromptPolicy

INSTALL_HINT = (
    "VLLMGenerator needs vLLM, an optional dependency: install it with "
    "`pip install prefloop[vllm]` (Linux with a CUDA GPU), or use TransformersGenerator"
)
log = logging.getLogger("prefloop.generation")


@dataclass(frozen=True)
class VLLMRequest:
    """One prompt to send to one model: chat messages, flat text, sampling, system principle.

    ``sampling`` holds the keyword arguments of ``vllm.SamplingParams``.
    """

    prompt_id: str
    messages: list[Message]
    prompt_text: str
    sampling: dict[str, Any] = field(default_factory=dict)
    principle: str | None = None


@dataclass(frozen=True)
class VLLMEngineOptions:
    """Options of one model's ``vllm.LLM`` engine.

    ``chat_template_kwargs`` go to the chat template (e.g. ``{"enable_thinking": False}``);
    ``engine_kwargs`` are further ``vllm.LLM`` keyword arguments.
    """

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    keep_loaded: bool = False
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tensor_parallel_size, int) or self.tensor_parallel_size < 1:
            raise ValueError(
                f"tensor_parallel_size must be an integer >= 1, got {self.tensor_parallel_size!r}"
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {self.max_model_len!r}")

    def llm_kwargs(self) -> dict[str, Any]:
        """The ``vllm.LLM`` keyword arguments besides the model and the seed."""
        return {
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            **({"max_model_len": self.max_model_len} if self.max_model_len is not None else {}),
            **self.engine_kwargs,
        }


def sampling_kwargs(sampling: Sampling, seed: int, model: str, prompt_id: str) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` arguments of one (model, prompt): one sample, its own seed.

    Why: a per-request seed makes vLLM's sampling reproducible per answer rather than per batch.
    """
    return {
        "n": 1,
        "max_tokens": sampling.max_new_tokens,
        "temperature": float(sampling.temperature),
        "top_p": float(sampling.top_p),
        "seed": sampling.request_seed(seed, model, prompt_id),
    }


def build_requests(
    items: list[PromptItem],
    model: str,
    seed: int,
    sampling: Sampling,
    system_prompts: SystemPromptPolicy | None = None,
) -> list[VLLMRequest]:
    """The requests for ``model``: one per item, in item order, with its system prompt."""
    policy = system_prompts or SystemPromptPolicy()
    out = []
    for item in items:
        messages, principle = policy.messages(seed, model, item)
        out.append(
            VLLMRequest(
                prompt_id=item.prompt_id,
                messages=messages,
                prompt_text=flatten_messages(messages),
                sampling=sampling_kwargs(sampling, seed, model, item.prompt_id),
                principle=principle,
            )
        )
    return out


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, Sequence) else None


def parse_outputs(requests: list[VLLMRequest], outputs: Sequence[Any]) -> dict[str, Answer]:
    """Each request's answer from vLLM's ``RequestOutput`` list (same order).

    Text is the first completion, stripped; token counts are the lengths of the prompt's and the
    completion's token ids (None when vLLM gives none). An output without a completion is a
    failure, not an empty answer.
    """
    if len(outputs) != len(requests):
        raise ValueError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
    answers: dict[str, Answer] = {}
    for request, output in zip(requests, outputs, strict=True):
        completions = getattr(output, "outputs", None) or []
        if not completions:
            answers[request.prompt_id] = GenerationFailure(
                "empty_output", f"vLLM returned no completion for prompt {request.prompt_id!r}"
            )
            continue
        first = completions[0]
        answers[request.prompt_id] = Generated(
            str(first.text).strip(),
            prompt_tokens=_length(getattr(output, "prompt_token_ids", None)),
            completion_tokens=_length(getattr(first, "token_ids", None)),
            principle=request.principle,
        )
    return answers


class VLLMModel:
    """One model of a pool on its own vLLM engine (a ``ModelBackend``).

    Raises:
        ImportError: vLLM is not installed (the message says how to install it).
    """

    def __init__(
        self,
        name: str,
        path: str,
        *,
        sampling: Sampling | None = None,
        options: VLLMEngineOptions | None = None,
        system_prompts: SystemPromptPolicy | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self._vllm: Any = vllm
        check_models({name: path})
        self.name = name
        self.path = path
        self.sampling = sampling or Sampling()
        self.options = options or VLLMEngineOptions()
        self.system_prompts = system_prompts or SystemPromptPolicy()
        self._llm: Any = None

    def _engine(self, seed: int) -> Any:
        if self._llm is None:
            engine_seed = self.sampling.seed if self.sampling.seed is not None else seed
            self._llm = self._vllm.LLM(
                model=self.path, seed=engine_seed, **self.options.llm_kwargs()
            )
        return self._llm

    def release(self) -> None:
        """Drop the engine so that its GPU memory can go to the next model."""
        self._llm = None
        gc.collect()

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        """Every prompt's answer; chat models get their chat template, others the flat text."""
        llm = self._engine(seed)
        try:
            requests = build_requests(items, self.name, seed, self.sampling, self.system_prompts)
            chat = bool(getattr(llm.get_tokenizer(), "chat_template", None))
            try:
                return parse_outputs(requests, self._run(llm, requests, chat))
            except Exception as exc:  # the engine refused the batch: isolate the bad prompts
                if len(requests) == 1:
                    return {requests[0].prompt_id: self._failure(requests[0], exc)}
                log.warning("model %s: vLLM refused the batch (%s); one by one", self.name, exc)
                answers: dict[str, Answer] = {}
                for request in requests:
                    try:
                        answers.update(parse_outputs([request], self._run(llm, [request], chat)))
                    except Exception as one:
                        answers[request.prompt_id] = self._failure(request, one)
                return answers
        finally:
            if not self.options.keep_loaded:
                del llm
                self.release()

    def _failure(self, request: VLLMRequest, exc: Exception) -> GenerationFailure:
        text = " ".join(str(exc).split())[:300]
        return GenerationFailure(
            "engine_error",
            f"model {self.name!r}: vLLM failed on prompt {request.prompt_id!r}: "
            f"{type(exc).__name__}: {text}",
        )

    def _run(self, llm: Any, requests: list[VLLMRequest], chat: bool) -> list[Any]:
        params = [self._vllm.SamplingParams(**r.sampling) for r in requests]
        if chat:
            return list(
                llm.chat(
                    [r.messages for r in requests],
                    sampling_params=params,
                    use_tqdm=False,
                    chat_template_kwargs=self.options.chat_template_kwargs or None,
                )
            )
        return list(
            llm.generate([r.prompt_text for r in requests], sampling_params=params, use_tqdm=False)
        )


class VLLMGenerator(PoolGenerator):
    """A pool of vLLM models sharing one set of settings.

    Args:
        models: ``{name: model path or id}``; ``name`` becomes ``Response.model``.
        max_new_tokens / temperature / top_p: sampling settings (temperature 0 is greedy).
        tensor_parallel_size / gpu_memory_utilization / max_model_len: passed to ``vllm.LLM``.
        chat_template_kwargs: passed to the chat template, e.g. ``{"enable_thinking": False}``.
        engine_kwargs: further ``vllm.LLM`` keyword arguments.
        system_prompts: which system prompt each model gets per prompt.

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
        system_prompts: SystemPromptPolicy | None = None,
    ) -> None:
        try:
            import vllm  # noqa: F401  (fail before validating anything else)
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        sampling = Sampling(max_new_tokens, temperature, top_p)
        options = VLLMEngineOptions(
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            chat_template_kwargs=dict(chat_template_kwargs or {}),
            engine_kwargs=dict(engine_kwargs or {}),
        )
        super().__init__(
            [
                VLLMModel(
                    name, path, sampling=sampling, options=options, system_prompts=system_prompts
                )
                for name, path in check_models(models).items()
            ]
        )
        self.name = "vllm"
