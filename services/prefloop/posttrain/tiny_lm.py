"""A tiny random Llama and its byte-level BPE tokenizer, built from a config, offline.

For the places that need *a* causal LM but not a good one: the tests (posttrain, the policy in
the loop, generation, judges) and ``prefloop bench label-efficiency --policy tiny``, which puts
the policy-based rules (ADPO, AE-DPO, AE-Borda) in the loop on a CPU in seconds. Nothing is
downloaded: the tokenizer is trained on the given texts, the weights are drawn from a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(texts: list[str], vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer (``vocab_size`` tokens) trained on ``texts``, with a chat
    template; any text encodes (the byte alphabet is always in the vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(tokenizer: Any, **extra: Any) -> Any:
    """A 2-layer, 32-wide Llama config for ``tokenizer`` (extra fields override)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def save_tiny_causal_lm(directory: Path, texts: list[str], seed: int = 0, **extra: Any) -> Path:
    """A tiny random Llama causal LM + its tokenizer saved as a Hugging Face directory.

    Why: a policy (or judge, or generator) that loads with ``from_pretrained`` like a real one,
    so the code paths under test or benchmark are the real ones.
    """
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tokenizer, **extra))
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory
