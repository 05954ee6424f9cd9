"""Last-token hidden states of any local Hugging Face model: the GPU-box embedder.

This is ActiveUltraFeedback's feature extractor (spec ``activeuf.md`` section 2,
https://arxiv.org/abs/2603.09692): a reward model's backbone (there, Skywork-Reward-V2-Qwen3-4B
loaded with ``AutoModel``, i.e. without its score head) reads the conversation and the feature
of a response is ``last_hidden_state`` at the last non-pad token, the position a sequence-
classification reward head would read.

Input formatting:
* with a chat template: ``apply_chat_template([{"role": "user", "content": prompt},
  {"role": "assistant", "content": response}], tokenize=False)``, tokenised without adding
  special tokens again (the template already carries BOS etc.; adding them would double them);
* without one: ``prompt + "\\n\\n" + response`` with the tokenizer's own special tokens.
Sequences are truncated on the right to ``max_length_tokens`` (4096 in the reference) and
right-padded within a length-sorted batch. The model is loaded from a local directory only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from prefloop.reward.embedding_common import (
    EmbedderError,
    ProgressCallback,
    check_texts,
    force_offline,
    length_sorted_batches,
    pad_right,
    progress_reporter,
    resolve_device,
    resolve_dtype,
)


def _config_fingerprint(model_dir: Path) -> str:
    """Short hash of config.json, so two different models at one path never share a cache key."""
    config = model_dir / "config.json"
    if not config.is_file():
        raise EmbedderError(f"{model_dir} has no config.json: not a Hugging Face model directory")
    return hashlib.sha256(config.read_bytes()).hexdigest()[:12]


class HFLastTokenEmbedder:
    """``last_hidden_state`` at the last non-pad token of a local causal/encoder model."""

    def __init__(
        self,
        model_path: str,
        max_length_tokens: int = 4096,
        batch_size: int = 8,
        device: str = "cpu",
        dtype: str = "float32",
        progress: ProgressCallback | None = None,
    ) -> None:
        if max_length_tokens < 2:
            raise EmbedderError(f"max_length_tokens must be >= 2, got {max_length_tokens}")
        if batch_size < 1:
            raise EmbedderError(f"batch_size must be >= 1, got {batch_size}")
        model_dir = Path(model_path)
        if not model_dir.is_dir():
            raise EmbedderError(f"model_path {model_path!r} is not a local directory")
        fingerprint = _config_fingerprint(model_dir)
        force_offline()
        from transformers import AutoModel, AutoTokenizer

        self.max_length_tokens = int(max_length_tokens)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype)
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, dtype=self.torch_dtype
        )
        self.model.to(self.device).eval()
        hidden = getattr(self.model.config, "hidden_size", None)
        if hidden is None:
            raise EmbedderError(f"the model in {model_dir} has no hidden_size in its config")
        self.dim = int(hidden)
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        self._pad_id = int(pad_id) if pad_id is not None else 0
        fmt = "chat" if self.uses_chat_template else "plain"
        self.name = (
            f"hf_last_token:{model_dir.resolve().name}:{fingerprint}:max{self.max_length_tokens}"
            f":{dtype}:{fmt}"
        )

    def format_texts(self, prompts: list[str], responses: list[str]) -> list[str]:
        """The text each (prompt, response) is read as: chat template or plain concatenation."""
        if not self.uses_chat_template:
            return [f"{p}\n\n{r}" for p, r in zip(prompts, responses, strict=True)]
        texts: list[str] = []
        for p, r in zip(prompts, responses, strict=True):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                tokenize=False,
            )
            if not isinstance(text, str):
                raise EmbedderError("the tokenizer's chat template did not render to a string")
            texts.append(text)
        return texts

    def token_ids(self, prompts: list[str], responses: list[str]) -> list[list[int]]:
        """Right-truncated token ids of each formatted pair."""
        texts = self.format_texts(prompts, responses)
        encoded = self.tokenizer(
            texts,
            add_special_tokens=not self.uses_chat_template,
            truncation=True,
            max_length=self.max_length_tokens,
            padding=False,
        )["input_ids"]
        ids = [list(seq) for seq in encoded]
        for i, seq in enumerate(ids):
            if not seq:
                raise EmbedderError(f"pair {i} tokenised to an empty sequence")
        return ids

    def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """(M, hidden_size) float32 last-token features of M (prompt, response) pairs."""
        check_texts(prompts, responses)
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        if not prompts:
            return out
        ids = self.token_ids(prompts, responses)
        batches = length_sorted_batches([len(s) for s in ids], self.batch_size)
        with (
            progress_reporter(len(ids), "embedding (last token)", self.progress) as advance,
            torch.inference_mode(),
        ):
            for batch in batches:
                input_ids, mask = pad_right([ids[i] for i in batch], self._pad_id)
                hidden = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                ).last_hidden_state
                last = (mask.sum(dim=1) - 1).to(self.device)
                rows = torch.arange(len(batch), device=self.device)
                out[batch] = hidden[rows, last].float().cpu().numpy()
                advance(len(batch))
        return out
