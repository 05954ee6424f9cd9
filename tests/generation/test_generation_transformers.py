"""TransformersGenerator on tiny random-weight models: shapes, reproducibility, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from prefloop.data.records import PromptItem, Response
from prefloop.generation.base import GenerationError
from prefloop.generation.transformers_backend import TransformersGenerator, sample_next_tokens


def items() -> list[PromptItem]:
    return [
        PromptItem("p0", "hello world"),
        PromptItem(
            "p1",
            ({"role": "system", "content": "be brief"}, {"role": "user", "content": "how are you"}),
        ),
        PromptItem(
            "p2", "the quick brown fox jumps over the lazy dog", (Response("old", "kept", 0.5),)
        ),
        PromptItem("p3", "please answer"),
    ]


def texts(out: list[PromptItem], model: str) -> list[str]:
    return [next(r.text for r in it.responses if r.model == model) for it in out]


def test_one_response_per_model_is_appended(tiny_models: dict[str, str]) -> None:
    gen = TransformersGenerator(tiny_models, max_new_tokens=8, batch_size=2)
    out = gen.generate(items(), seed=0)
    assert [it.prompt_id for it in out] == ["p0", "p1", "p2", "p3"]
    for before, after in zip(items(), out, strict=True):
        assert after.prompt == before.prompt
        assert after.responses[: len(before.responses)] == before.responses
        assert [r.model for r in after.responses[len(before.responses) :]] == ["plain", "chat"]
        assert all(r.score is None and isinstance(r.text, str) for r in after.responses[-2:])
    assert any(t for t in texts(out, "plain") + texts(out, "chat"))


def test_same_seed_same_text_other_seed_other_text(tiny_models: dict[str, str]) -> None:
    gen = TransformersGenerator(tiny_models, max_new_tokens=10, batch_size=4)
    first = gen.generate(items(), seed=7)
    again = TransformersGenerator(tiny_models, max_new_tokens=10, batch_size=4).generate(
        items(), seed=7
    )
    other = gen.generate(items(), seed=8)
    assert first == again
    for model in ("plain", "chat"):
        assert texts(first, model) != texts(other, model)


def test_text_does_not_depend_on_batching_or_order(tiny_models: dict[str, str]) -> None:
    batched = TransformersGenerator(tiny_models, max_new_tokens=10, batch_size=4).generate(
        items(), seed=3
    )
    single = TransformersGenerator(tiny_models, max_new_tokens=10, batch_size=1)
    reordered = single.generate(list(reversed(items())), seed=3)
    assert batched == list(reversed(reordered))
    alone = single.generate([items()[1]], seed=3)
    assert alone[0] == batched[1]


def test_greedy_decoding_ignores_the_seed(tiny_models: dict[str, str]) -> None:
    gen = TransformersGenerator({"plain": tiny_models["plain"]}, max_new_tokens=6, temperature=0.0)
    assert gen.generate(items(), seed=1) == gen.generate(items(), seed=2)


def test_new_tokens_are_bounded_by_max_new_tokens(tiny_models: dict[str, str]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["plain"])
    longest_token = max(len(tokenizer.decode([i])) for i in range(len(tokenizer)))
    gen = TransformersGenerator({"plain": tiny_models["plain"]}, max_new_tokens=3)
    short = texts(gen.generate(items(), seed=0), "plain")
    assert all(len(text) <= 3 * longest_token for text in short)
    gen_long = TransformersGenerator({"plain": tiny_models["plain"]}, max_new_tokens=30)
    long = texts(gen_long.generate(items(), seed=0), "plain")
    assert sum(map(len, long)) > sum(map(len, short))


def test_chat_template_is_used_when_present(tiny_models: dict[str, str]) -> None:
    gen = TransformersGenerator(tiny_models)
    chat_tok = AutoTokenizer.from_pretrained(tiny_models["chat"])
    plain_tok = AutoTokenizer.from_pretrained(tiny_models["plain"])
    item = items()[1]
    text, add_special = gen.render_prompt(item, chat_tok)
    assert text == "<|system|>be brief<|user|>how are you<|assistant|>"
    assert add_special is False
    assert gen.render_prompt(item, plain_tok) == ("system: be brief\nuser: how are you", True)


def test_prompt_longer_than_the_context_is_refused(tiny_models: dict[str, str]) -> None:
    n_positions = AutoConfig.from_pretrained(tiny_models["plain"]).n_positions
    long = PromptItem("too-long", "hello world " * n_positions)
    gen = TransformersGenerator({"plain": tiny_models["plain"]}, max_new_tokens=4)
    with pytest.raises(
        GenerationError, match=rf"prompt 'too-long' has \d+ tokens.*context of {n_positions}"
    ):
        gen.generate([long], seed=0)


def test_missing_model_directory_is_reported(tmp_path: Path) -> None:
    gen = TransformersGenerator({"ghost": str(tmp_path / "nowhere")})
    with pytest.raises(GenerationError, match=r"model 'ghost': cannot load .*local files only"):
        gen.generate(items(), seed=0)


def test_duplicate_prompt_ids_and_empty_calls(tiny_models: dict[str, str]) -> None:
    gen = TransformersGenerator({"plain": tiny_models["plain"]}, max_new_tokens=2)
    assert gen.generate([], seed=0) == []
    with pytest.raises(GenerationError, match="prompt_id 'p0' appears twice"):
        gen.generate([items()[0], items()[0]], seed=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        gen.generate(items(), seed=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be an integer >= 1"),
        ({"temperature": -0.5}, "temperature must be a finite number >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_parameter_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformersGenerator({"m": "path"}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="models must be a non-empty mapping"):
        TransformersGenerator({})


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_sampling_rows_are_independent() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    full = sample_next_tokens(logits, _generators([1, 2, 3, 4]), temperature=1.0, top_p=1.0)
    row2 = sample_next_tokens(logits[2:3], _generators([3]), temperature=1.0, top_p=1.0)
    assert full.shape == (4,)
    assert full[2] == row2[0]


def test_sampling_frequencies_follow_the_softmax() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2])
    logits = probs.log().repeat(3000, 1)
    gens = _generators(list(range(3000)))
    tokens = sample_next_tokens(logits, gens, temperature=1.0, top_p=1.0)
    freq = torch.bincount(tokens, minlength=3).float() / 3000
    assert torch.allclose(freq, probs, atol=0.04)


def test_top_p_and_temperature_sharpen_the_choice() -> None:
    logits = torch.tensor([[2.0, 1.9, -1.0, -3.0]]).repeat(400, 1)
    nucleus = sample_next_tokens(logits, _generators(list(range(400))), temperature=1.0, top_p=0.5)
    assert set(nucleus.tolist()) == {0}
    two = sample_next_tokens(logits, _generators(list(range(400))), temperature=1.0, top_p=0.9)
    assert set(two.tolist()) == {0, 1}
    cold = sample_next_tokens(logits, _generators(list(range(400))), temperature=0.001, top_p=1.0)
    assert set(cold.tolist()) == {0}
    with pytest.raises(ValueError, match="one generator per row"):
        sample_next_tokens(logits, _generators([0]), temperature=1.0, top_p=1.0)
