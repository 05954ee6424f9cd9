"""Tiny random-weight causal LMs saved to disk, built offline from a config and a toy tokenizer.

Shared by tests/generation and tests/live (imported as ``live.tiny_lm`` from other folders).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from prefloop.generation.base import Sampling
from prefloop.generation.transformers_backend import LoadedCausalLM, render_chat
from prefloop.llm.fake_server import FakeReply

CORPUS = [
    "hello world how are you today",
    "the quick brown fox jumps over the lazy dog",
    "please answer the question in one short sentence",
    "user assistant system",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
N_POSITIONS = 512


def toy_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of 320 tokens trained on a few sentences."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>")


def save_tiny_model(path: Path, tokenizer: PreTrainedTokenizerFast, weight_seed: int) -> str:
    """A 2-layer GPT-2 with seeded random weights saved with its tokenizer; returns the path."""
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=2,
        n_embd=32,
        n_head=2,
        n_positions=N_POSITIONS,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weight_seed)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def save_tiny_pair(root: Path) -> dict[str, str]:
    """Two tiny GPT-2 models: ``plain`` (no chat template) and ``chat`` (with one)."""
    plain = save_tiny_model(root / "plain", toy_tokenizer(), weight_seed=0)
    chat_tokenizer = toy_tokenizer()
    chat_tokenizer.chat_template = CHAT_TEMPLATE
    chat = save_tiny_model(root / "chat", chat_tokenizer, weight_seed=1)
    return {"plain": plain, "chat": chat}


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run tiny models on one intra-op thread (restored afterwards).

    Matrices of 32 columns gain nothing from threads, and on a busy 2-core machine OpenMP's
    thread hand-offs make each op thousands of times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ModelReply:
    """A fake-server reply function that answers with a tiny model, exactly as the local
    transformers backend would for the same messages, sampling settings and seed."""

    def __init__(self, name: str, path: str) -> None:
        self.lm = LoadedCausalLM.load(name, path)
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any], index: int) -> FakeReply:
        sampling = Sampling(
            max_new_tokens=int(body["max_tokens"]),
            temperature=float(body["temperature"]),
            top_p=float(body["top_p"]),
        )
        text, add_special = render_chat(body["messages"], self.lm.tokenizer)
        with self.lock:
            ((answer, prompt_tokens, completion_tokens),) = self.lm.generate(
                [text], add_special, [int(body["seed"])], sampling
            )
        return FakeReply(answer, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
