"""Tiny random-weight causal LMs saved to disk, built offline from a config and a toy tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

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
N_POSITIONS = 96


def _tokenizer() -> PreTrainedTokenizerFast:
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


def _save_model(path: Path, tokenizer: PreTrainedTokenizerFast, weight_seed: int) -> str:
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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two tiny GPT-2 models: ``plain`` (no chat template) and ``chat`` (with one)."""
    root = tmp_path_factory.mktemp("tiny-lms")
    plain = _save_model(root / "plain", _tokenizer(), weight_seed=0)
    chat_tokenizer = _tokenizer()
    chat_tokenizer.chat_template = CHAT_TEMPLATE
    chat = _save_model(root / "chat", chat_tokenizer, weight_seed=1)
    return {"plain": plain, "chat": chat}


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread() -> Iterator[None]:
    """Run the tiny models on one intra-op thread (restored afterwards).

    Matrices of 32 columns gain nothing from threads, and on a busy 2-core machine OpenMP's
    thread hand-offs make each op thousands of times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
