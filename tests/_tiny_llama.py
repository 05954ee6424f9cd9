"""Tiny Llama models and a byte-level BPE tokenizer built from a config, offline.

Shared by the tests that train on a run's output (tests/engine/test_run_dataset_training.py,
tests/posttrain, tests/trainer/test_policy*.py): no download, no weights from the Hub. Also makes
the one-round run directory those tests read (the shrunk quickstart, real MiniLM embedder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(texts: list[str]) -> Any:
    """A 400-token byte-level BPE tokenizer trained on ``texts``, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
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


def pair_texts(rows: list[dict[str, Any]]) -> list[str]:
    """Every message text of conversational preference rows (to train the tokenizer on)."""
    return [m["content"] for r in rows for col in ("prompt", "chosen", "rejected") for m in r[col]]


def save_tiny_causal_lm(directory: Path, texts: list[str], seed: int = 0, **extra: Any) -> Path:
    """A tiny random Llama causal LM + its tokenizer saved as a Hugging Face directory."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tokenizer, **extra))
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def make_tiny_run(repo_root: Path, out: Path, feature_cache_dir: Path, *extra: str) -> Path:
    """One round of the shrunk quickstart (DRTS, 8 prompts, seed 3) written to ``out``."""
    from prefloop.cli import main

    args = ["run", str(repo_root / "examples" / "quickstart.yaml"), "--output", str(out)]
    overrides = [
        "spec.prompts.limit=40",
        "spec.batchSize=8",
        "spec.rewardModel.embedder.maxLengthTokens=64",
        f"spec.rewardModel.embedder.cacheDir={feature_cache_dir}",
        "spec.rewardModel.head.numHeads=4",
        "spec.trainer.epochsPerRound=2",
        "spec.acquisition.method=drts",
        "spec.seed=3",
        "spec.budget.maxRounds=1",
        "spec.budget.maxAnnotations=null",
        *extra,
    ]
    for override in overrides:
        args += ["--set", override]
    previous = os.umask(0o022)
    try:
        assert main(args) == 0
    finally:
        os.umask(previous)
    return out


def policy_overrides(model_dir: Path, rounds: int, method: str = "adpo") -> list[str]:
    """`--set` overrides: the quickstart shrunk to a ``rounds``-round policy-in-the-loop run
    (20 prompts, 3 per round, seed 5, the tiny policy in ``model_dir``); ADPO keeps its
    pseudo-labels in the dataset."""
    params = "{gamma: 0.05, pairing: random}" if method == "adpo" else "{}"
    return [
        "spec.prompts.limit=20",
        "spec.batchSize=3",
        "spec.seed=5",
        "spec.trainer.kind=policy",
        f"spec.trainer.policy.model={model_dir}",
        "spec.trainer.policy.maxLength=384",
        "spec.trainer.policy.learningRate=0.001",
        "spec.trainer.policy.batchSize=4",
        "spec.trainer.policy.stepsPerRound=2",
        f"spec.acquisition.method={method}",
        f"spec.acquisition.params={params}",
        "spec.budget.maxAnnotations=null",
        f"spec.budget.maxRounds={rounds}",
        "spec.output.includePseudoLabels=true",
    ]
