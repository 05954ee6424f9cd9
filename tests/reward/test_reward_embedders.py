"""Embedders: the real MiniLM (marked ``model``) and a tiny random-weight last-token Llama."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from prefloop.reward.embedders import EmbedderError, make_embedder
from prefloop.reward.last_token_embedder import HFLastTokenEmbedder
from prefloop.reward.minilm_embedder import MiniLMEmbedder, split_pair_budget

WORDS = [
    "user", "assistant", ":", "the", "cat", "sat", "on", "mat", "dog", "ran", "hello", "world",
    "what", "is", "a", "b", "why", "sky", "blue",
]  # fmt: skip
CHAT_TEMPLATE = "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"


# -- the truncation policy (no model needed) ----------------------------------------------------
@pytest.mark.parametrize(
    ("prompt_len", "response_len", "budget", "expected"),
    [
        (10, 20, 100, (10, 20)),  # everything fits
        (300, 300, 100, (25, 75)),  # both long: response keeps 3/4
        (300, 10, 100, (90, 10)),  # short response leaves the rest to the prompt
        (5, 300, 100, (5, 95)),  # short prompt leaves the rest to the response
        (0, 300, 125, (0, 125)),
    ],
)
def test_pair_budget_favours_the_response(
    prompt_len: int, response_len: int, budget: int, expected: tuple[int, int]
) -> None:
    kept = split_pair_budget(prompt_len, response_len, budget)
    assert kept == expected
    assert sum(kept) <= budget


def test_factory_rejects_unknown_kinds_parameters_and_bad_lengths() -> None:
    with pytest.raises(EmbedderError, match="unknown embedder kind 'bert'"):
        make_embedder("bert")  # type: ignore[arg-type]
    with pytest.raises(EmbedderError, match=r"\['max_len'\]"):
        make_embedder("minilm", max_len=5)
    with pytest.raises(EmbedderError, match="max_length_tokens must be in"):
        MiniLMEmbedder(max_length_tokens=1024)
    with pytest.raises(EmbedderError, match="not a local directory"):
        HFLastTokenEmbedder("/nonexistent/model")


# -- MiniLM (real weights) ----------------------------------------------------------------------
@pytest.mark.model
def test_minilm_gives_384_d_unit_vectors_with_meaningful_similarity(minilm: MiniLMEmbedder) -> None:
    prompts = ["What is the capital of France?"] * 3 + ["Write a haiku about rain."]
    responses = [
        "Paris is the capital of France.",
        "The capital city of France is Paris.",
        "Bananas are a good source of potassium.",
        "Soft rain on the roof / ...",
    ]
    x = minilm.embed(prompts, responses)
    assert x.shape == (4, 384) and x.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sims = x @ x.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert sims[0, 1] > sims[0, 3]


@pytest.mark.model
def test_minilm_features_do_not_depend_on_batch_neighbours(minilm: MiniLMEmbedder) -> None:
    prompts = ["Explain gravity."] * 3
    responses = ["Mass attracts mass. " * 40, "It pulls.", "Objects fall toward Earth."]
    batched = minilm.embed(prompts, responses)
    alone = np.concatenate(
        [minilm.embed([p], [r]) for p, r in zip(prompts, responses, strict=True)]
    )
    np.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.model
def test_minilm_pair_encoding_respects_the_budget(minilm: MiniLMEmbedder) -> None:
    ids, types = minilm.encode_pairs(["why " * 300], ["because " * 300])
    assert len(ids[0]) == 128
    assert (
        ids[0][0] == minilm.tokenizer.cls_token_id and ids[0][-1] == minilm.tokenizer.sep_token_id
    )
    prompt_part = sum(1 for t in types[0] if t == 0)
    assert prompt_part == 1 + (125 - 125 * 3 // 4) + 1  # [CLS] + prompt share + [SEP]
    assert "128" in minilm.name and "MiniLM" in minilm.name


@pytest.mark.model
def test_minilm_reports_progress(minilm: MiniLMEmbedder) -> None:
    seen: list[tuple[int, int]] = []
    minilm.progress = lambda done, total: seen.append((done, total))
    try:
        minilm.embed(["q"] * 3, ["a", "b", "c"])
    finally:
        minilm.progress = None
    assert seen[-1] == (3, 3)
    with pytest.raises(EmbedderError, match="2 prompts but 1 responses"):
        minilm.embed(["a", "b"], ["c"])


# -- a tiny random-weight last-token model ------------------------------------------------------
def _save_tiny_model(directory: Path, chat_template: str | None) -> Path:
    """A 2-layer, 32-wide random Llama with a word-level tokenizer, saved like a hub model."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)
    common = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
    }
    torch.manual_seed(0)
    LlamaModel(LlamaConfig(**common)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny_chat"), CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def tiny_plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("tiny_plain"), None)


def test_last_token_features_are_the_hidden_state_at_the_last_real_token(
    tiny_chat_model: Path,
) -> None:
    emb = make_embedder("hf_last_token", model_path=str(tiny_chat_model), batch_size=2)
    assert isinstance(emb, HFLastTokenEmbedder)
    assert emb.dim == 32 and emb.uses_chat_template
    prompts = ["what is a cat", "hello", "why is the sky blue"]
    responses = ["the cat sat on the mat", "world", "the sky is blue"]
    x = emb.embed(prompts, responses)
    assert x.shape == (3, 32) and x.dtype == np.float32
    ids = emb.token_ids(prompts, responses)
    with torch.no_grad():
        for i, seq in enumerate(ids):
            hidden = emb.model(input_ids=torch.tensor([seq])).last_hidden_state[0, -1]
            np.testing.assert_allclose(x[i], hidden.numpy(), atol=1e-5)


def test_chat_template_formats_user_and_assistant_turns(tiny_chat_model: Path) -> None:
    emb = HFLastTokenEmbedder(str(tiny_chat_model))
    [text] = emb.format_texts(["what is a cat"], ["the cat sat"])
    assert text == "<s> user : what is a cat </s> <s> assistant : the cat sat </s> "
    [ids] = emb.token_ids(["what is a cat"], ["the cat sat"])
    assert ids.count(1) == 2  # the template's two BOS tokens, none added on top
    assert ":chat" in emb.name and "max4096" in emb.name


def test_long_inputs_are_truncated_on_the_right(tiny_chat_model: Path) -> None:
    full = HFLastTokenEmbedder(str(tiny_chat_model))
    short = HFLastTokenEmbedder(str(tiny_chat_model), max_length_tokens=8)
    p, r = ["what is a cat"], ["the cat sat on the mat " * 5]
    [full_ids], [short_ids] = full.token_ids(p, r), short.token_ids(p, r)
    assert len(full_ids) > 8 and short_ids == full_ids[:8]
    assert short.embed(p, r).shape == (1, 32)
    assert short.name != full.name


def test_plain_concatenation_without_a_chat_template(tiny_plain_model: Path) -> None:
    emb = HFLastTokenEmbedder(str(tiny_plain_model), dtype="float32")
    assert not emb.uses_chat_template and ":plain" in emb.name
    assert emb.format_texts(["hello"], ["world"]) == ["hello\n\nworld"]
    x = emb.embed(["hello", "what is a b"], ["world", "a b"])
    assert x.shape == (2, 32) and np.all(np.isfinite(x))
    assert not np.allclose(x[0], x[1])
    with pytest.raises(EmbedderError, match="dtype must be one of"):
        HFLastTokenEmbedder(str(tiny_plain_model), dtype="int8")
