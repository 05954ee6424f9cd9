"""Generate candidate responses with local causal LMs through Hugging Face transformers.

Each model of the pool answers every prompt once, as in ActiveUltraFeedback's completion step
(one model at a time, temperature 1.0, top-p 1.0; https://arxiv.org/abs/2603.09692). Models are
loaded from local paths only (nothing is downloaded), one at a time to bound memory, prompts go
through in batches of ``batch_size``, and the chat template is applied when the tokenizer has
one. :class:`TransformersModel` is one model of a pool (its own sampling settings and system
prompts); :class:`TransformersGenerator` is a pool of them with shared settings.

A prompt that does not fit the model's context with ``max_new_tokens`` gets no response from
that model (a recorded :class:`~prefloop.generation.base.GenerationFailure`); the other prompts
are answered. Each response records its prompt and completion tokens (the stop token counted).

Reproducibility: transformers' built-in sampling draws from one random stream for the whole
batch, so an answer would depend on its batch neighbours and on global RNG state. Here decoding
runs as greedy search over a logits processor that itself samples, per row, from a
``torch.Generator`` seeded by :func:`~prefloop.generation.base.sample_seed` of (run seed, model,
prompt id). Temperature and nucleus (top-p, Holtzman et al. 2020,
https://arxiv.org/abs/1904.09751) filtering are applied inside that processor.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from typing import Any

import torch

from prefloop.data.records import Message, PromptItem
from prefloop.generation.base import (
    Answer,
    Generated,
    GenerationError,
    GenerationFailure,
    PoolGenerator,
    Sampling,
    check_models,
    flatten_messages,
)
from prefloop.generation.system_prompts import SystemPromptPolicy


def sample_next_tokens(
    scores: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    temperature: float,
    top_p: float,
) -> torch.Tensor:
    """One sampled token id per row of ``scores`` (B, V), row ``b`` drawn with ``generators[b]``.

    Why: per-row generators make each row's draw independent of the other rows in the batch.
    Tokens outside the smallest set whose probability reaches ``top_p`` are removed (the most
    likely token always stays), after dividing the logits by ``temperature``.
    """
    if scores.ndim != 2 or scores.shape[0] != len(generators):
        raise ValueError(
            f"scores must be (batch, vocab) with one generator per row; got shape "
            f"{tuple(scores.shape)} and {len(generators)} generators"
        )
    logits = scores.float() / temperature
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    tokens = [
        torch.multinomial(probs[b], 1, generator=generators[b]) for b in range(len(generators))
    ]
    return torch.cat(tokens)


class _SeededSampler:
    """A logits processor that samples per row and forces greedy search to pick that token."""

    def __init__(self, generators: list[torch.Generator], temperature: float, top_p: float):
        self.generators = generators
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tokens = sample_next_tokens(
            scores, self.generators, temperature=self.temperature, top_p=self.top_p
        )
        forced = torch.full_like(scores, -math.inf)
        forced.scatter_(-1, tokens.unsqueeze(-1), 0.0)
        return forced  # type: ignore[return-value]


def render_chat(messages: list[Message], tokenizer: Any) -> tuple[str, bool]:
    """The text fed to the model, and whether special tokens must still be added.

    With a chat template the messages are rendered with the generation prompt (the template
    adds its own special tokens); without one they are flattened to ``role: content`` lines, and
    a lone user message is its bare content.
    """
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return str(rendered), False
    return flatten_messages(messages), True


class LoadedCausalLM:
    """A causal LM and its tokenizer in memory: render chats, count tokens, generate batches.

    Why apart from :class:`TransformersModel`: the same seeded decoding also serves a model
    behind a test HTTP server, which must answer exactly as the local backend would.
    """

    def __init__(self, name: str, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = (
            []
            if eos is None
            else [int(e) for e in eos]
            if isinstance(eos, list | tuple)
            else [int(eos)]
        )

    @classmethod
    def load(cls, name: str, path: str, device: str | torch.device = "cpu") -> LoadedCausalLM:
        """Load from a local directory (nothing is downloaded), left-padded, in eval mode.

        Raises:
            GenerationError: no causal LM and tokenizer there, or neither a pad nor an eos token.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer: Any
        model: Any
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise GenerationError(
                f"model {name!r}: cannot load a causal LM and tokenizer from {path!r} "
                f"(local files only, nothing is downloaded): {exc}"
            ) from exc
        device = torch.device(device)
        model.to(device)
        model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise GenerationError(
                    f"model {name!r}: the tokenizer at {path!r} has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        return cls(name, model, tokenizer, device)

    def prompt_length(self, text: str, add_special: bool) -> int:
        """Tokens of a rendered prompt."""
        return len(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def generate(
        self, texts: list[str], add_special: bool, seeds: list[int], sampling: Sampling
    ) -> list[tuple[str, int, int]]:
        """``(text, prompt tokens, completion tokens)`` per rendered prompt, in one batch.

        Row ``b`` samples with a generator seeded by ``seeds[b]`` (greedy at temperature 0);
        the completion count includes the stop token when the answer ended on one.
        """
        from transformers import GenerationConfig, LogitsProcessorList

        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids or None,
        )
        encoded = self.tokenizer(
            texts, add_special_tokens=add_special, padding=True, return_tensors="pt"
        )
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        processors = LogitsProcessorList()
        if sampling.temperature > 0:
            generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
            processors.append(
                _SeededSampler(generators, float(sampling.temperature), float(sampling.top_p))
            )
        input_ids = encoded["input_ids"].to(self.device)
        with torch.inference_mode():
            generated = self.model.generate(
                input_ids=input_ids,
                attention_mask=encoded["attention_mask"].to(self.device),
                generation_config=config,
                logits_processor=processors,
            )
        out = []
        for length, tokens in zip(
            lengths, generated[:, input_ids.shape[1] :].tolist(), strict=True
        ):
            cut = next((i for i, t in enumerate(tokens) if t in self.eos_ids), len(tokens))
            text = self.tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip()
            out.append((text, int(length), min(cut + 1, len(tokens))))
        return out


class TransformersModel:
    """One local causal LM of a pool (a :class:`~prefloop.generation.base.ModelBackend`).

    Args:
        name: recorded as ``Response.model``.
        path: local model directory (Hugging Face format).
        sampling: this model's length bound, temperature, nucleus mass and optional seed.
        batch_size: prompts per forward pass.
        device: torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
        system_prompts: which system prompt the model gets per prompt.
    """

    def __init__(
        self,
        name: str,
        path: str,
        *,
        sampling: Sampling | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        system_prompts: SystemPromptPolicy | None = None,
    ) -> None:
        check_models({name: path})
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.name = name
        self.path = path
        self.sampling = sampling or Sampling()
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.system_prompts = system_prompts or SystemPromptPolicy()

    def answer(self, items: list[PromptItem], *, seed: int) -> dict[str, Answer]:
        """Load the model, answer every prompt in batches, release the model.

        Raises:
            GenerationError: the model cannot be loaded from its local path.
        """
        lm = LoadedCausalLM.load(self.name, self.path, self.device)
        try:
            return self._answer_with(lm, items, seed)
        finally:
            del lm
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _plan(
        self, lm: LoadedCausalLM, items: list[PromptItem], seed: int
    ) -> tuple[list[tuple[PromptItem, str, bool, str | None]], dict[str, Answer]]:
        """Render every prompt; those that cannot be answered become failures."""
        planned: list[tuple[PromptItem, str, bool, str | None]] = []
        failed: dict[str, Answer] = {}
        limit = self.sampling.max_new_tokens
        for item in items:
            messages, principle = self.system_prompts.messages(seed, self.name, item)
            text, add_special = render_chat(messages, lm.tokenizer)
            length = lm.prompt_length(text, add_special)
            if length == 0:
                failed[item.prompt_id] = GenerationFailure(
                    "empty_prompt", f"model {self.name!r}: prompt {item.prompt_id!r} is empty"
                )
            elif lm.max_positions is not None and length + limit > lm.max_positions:
                failed[item.prompt_id] = GenerationFailure(
                    "prompt_too_long",
                    f"model {self.name!r}: prompt {item.prompt_id!r} has {length} tokens, and "
                    f"with max_new_tokens={limit} exceeds the model's context of "
                    f"{lm.max_positions} tokens",
                )
            else:
                planned.append((item, text, add_special, principle))
        return planned, failed

    def _answer_with(
        self, lm: LoadedCausalLM, items: list[PromptItem], seed: int
    ) -> dict[str, Answer]:
        planned, out = self._plan(lm, items, seed)
        for start in range(0, len(planned), self.batch_size):
            batch = planned[start : start + self.batch_size]
            seeds = [self.sampling.request_seed(seed, self.name, it.prompt_id) for it, *_ in batch]
            texts = lm.generate(
                [text for _, text, _, _ in batch], batch[0][2], seeds, self.sampling
            )
            for (item, _, _, principle), (text, prompt_tokens, completion_tokens) in zip(
                batch, texts, strict=True
            ):
                out[item.prompt_id] = Generated(text, prompt_tokens, completion_tokens, principle)
        return out


class TransformersGenerator(PoolGenerator):
    """A pool of local causal LMs sharing one set of settings.

    Args:
        models: ``{name: local model directory}``; ``name`` becomes ``Response.model``.
        max_new_tokens: the longest answer, in tokens.
        temperature: sampling temperature (> 0), or 0 for greedy decoding.
        top_p: nucleus sampling mass in (0, 1].
        batch_size: prompts per forward pass.
        device: torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
        system_prompts: which system prompt each model gets per prompt.
    """

    def __init__(
        self,
        models: dict[str, str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 8,
        device: str = "cpu",
        system_prompts: SystemPromptPolicy | None = None,
    ) -> None:
        sampling = Sampling(max_new_tokens, temperature, top_p)
        super().__init__(
            [
                TransformersModel(
                    name,
                    path,
                    sampling=sampling,
                    batch_size=batch_size,
                    device=device,
                    system_prompts=system_prompts,
                )
                for name, path in check_models(models).items()
            ]
        )
        self.name = "transformers"
