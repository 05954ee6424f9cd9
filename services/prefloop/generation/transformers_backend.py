"""Generate candidate responses with local causal LMs through Hugging Face transformers.

Each model of the pool answers every prompt once, as in ActiveUltraFeedback's completion step
(one model at a time, temperature 1.0, top-p 1.0; https://arxiv.org/abs/2603.09692). Models are
loaded from local paths only (nothing is downloaded), one at a time to bound memory, and the chat
template is applied when the tokenizer has one.

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

from prefloop.data.records import PromptItem
from prefloop.generation.base import (
    GenerationError,
    check_models,
    check_sampling,
    generate_model_by_model,
    sample_seed,
)


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


class TransformersGenerator:
    """A :class:`~prefloop.generation.base.ResponseGenerator` over local causal LMs.

    Args:
        models: ``{name: local model directory}``; ``name`` becomes ``Response.model``.
        max_new_tokens: the longest answer, in tokens.
        temperature: sampling temperature (> 0), or 0 for greedy decoding.
        top_p: nucleus sampling mass in (0, 1].
        batch_size: prompts per forward pass.
        device: torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
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
    ) -> None:
        self.models = check_models(models)
        temperature, top_p = check_sampling(max_new_tokens, temperature, top_p)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.name = "transformers"

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        """Append one sampled response per model to every item (existing responses are kept).

        Why: the live setting, where the pool of answers must be written before it is judged.

        Raises:
            GenerationError: a model cannot be loaded from its local path, or a prompt plus
                ``max_new_tokens`` exceeds a model's context length.
        """

        def answer_with(name: str, path: str) -> dict[str, str]:
            model, tokenizer = self._load(name, path)
            try:
                return self._generate_with(name, model, tokenizer, items, seed)
            finally:
                del model
                gc.collect()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

        return generate_model_by_model(items, seed, self.models, answer_with)

    def _load(self, name: str, path: str) -> tuple[Any, Any]:
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
        model.to(self.device)
        model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise GenerationError(
                    f"model {name!r}: the tokenizer at {path!r} has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def render_prompt(self, item: PromptItem, tokenizer: Any) -> tuple[str, bool]:
        """The text fed to the model, and whether special tokens must still be added.

        With a chat template the prompt's messages are rendered with the generation prompt (the
        template adds its own special tokens); without one the flattened prompt text is used.
        """
        if getattr(tokenizer, "chat_template", None):
            rendered = tokenizer.apply_chat_template(
                item.prompt_messages(), add_generation_prompt=True, tokenize=False
            )
            return str(rendered), False
        return item.prompt_text(), True

    def _eos_ids(self, model: Any, tokenizer: Any) -> list[int]:
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        if eos is None:
            return []
        return [int(e) for e in eos] if isinstance(eos, list | tuple) else [int(eos)]

    def _generate_with(
        self, name: str, model: Any, tokenizer: Any, items: list[PromptItem], seed: int
    ) -> dict[str, str]:
        from transformers import GenerationConfig, LogitsProcessorList

        eos_ids = self._eos_ids(model, tokenizer)
        max_positions = getattr(model.config, "max_position_embeddings", None)
        out: dict[str, str] = {}
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            rendered = [self.render_prompt(it, tokenizer) for it in batch]
            add_special = rendered[0][1]
            encoded = tokenizer(
                [text for text, _ in rendered],
                add_special_tokens=add_special,
                padding=True,
                return_tensors="pt",
            )
            lengths = encoded["attention_mask"].sum(dim=1).tolist()
            for it, length in zip(batch, lengths, strict=True):
                if length == 0:
                    raise GenerationError(f"model {name!r}: prompt {it.prompt_id!r} is empty")
                if max_positions is not None and length + self.max_new_tokens > max_positions:
                    raise GenerationError(
                        f"model {name!r}: prompt {it.prompt_id!r} has {length} tokens, and with "
                        f"max_new_tokens={self.max_new_tokens} exceeds the model's context of "
                        f"{max_positions} tokens"
                    )
            config = GenerationConfig(
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos_ids or None,
            )
            processors = LogitsProcessorList()
            if self.temperature > 0:
                generators = [
                    torch.Generator(device=self.device).manual_seed(
                        sample_seed(seed, name, it.prompt_id)
                    )
                    for it in batch
                ]
                processors.append(_SeededSampler(generators, self.temperature, self.top_p))
            input_ids = encoded["input_ids"].to(self.device)
            attention_mask = encoded["attention_mask"].to(self.device)
            with torch.inference_mode():
                generated = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    logits_processor=processors,
                )
            new_tokens = generated[:, input_ids.shape[1] :].tolist()
            for it, tokens in zip(batch, new_tokens, strict=True):
                cut = next((i for i, t in enumerate(tokens) if t in eos_ids), len(tokens))
                text = tokenizer.decode(tokens[:cut], skip_special_tokens=True)
                out[it.prompt_id] = text.strip()
        return out
