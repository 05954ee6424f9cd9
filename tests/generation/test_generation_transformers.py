"""TransformersGenerator on tiny random-weight models: shapes, reproducibility, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from prefloop.data.records import PromptItem, Response
from prefloop.generation.base import (
    Generated,
    GenerationError,
    GenerationFailure,
    PoolGenerator,
    Sampling,
    generation_metrics,
)
from prefloop.generation.system_prompts import PRINCIPLE_PROMPTS, SystemPromptPolicy
from prefloop.generation.transformers_backend import (
    LoadedCausalLM,
    TransformersGenerator,
    TransformersModel,
    render_chat,
    sample_next_tokens,
)


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
    chat_tok = AutoTokenizer.from_pretrained(tiny_models["chat"])
    plain_tok = AutoTokenizer.from_pretrained(tiny_models["plain"])
    messages = items()[1].prompt_messages()
    text, add_special = render_chat(messages, chat_tok)
    assert text == "<|system|>be brief<|user|>how are you<|assistant|>"
    assert add_special is False
    assert render_chat(messages, plain_tok) == ("system: be brief\nuser: how are you", True)
    assert render_chat([{"role": "user", "content": "hi"}], plain_tok) == ("hi", True)


def test_a_prompt_longer_than_the_context_gets_no_response(tiny_models: dict[str, str]) -> None:
    n_positions = AutoConfig.from_pretrained(tiny_models["plain"]).n_positions
    long = PromptItem("too-long", "hello world " * n_positions)
    model = TransformersModel("plain", tiny_models["plain"], sampling=Sampling(max_new_tokens=4))
    answers = model.answer([items()[0], long], seed=0)
    failure = answers["too-long"]
    assert isinstance(failure, GenerationFailure) and failure.kind == "prompt_too_long"
    assert re.search(
        rf"prompt 'too-long' has \d+ tokens.*context of {n_positions}", failure.message
    )
    assert isinstance(answers["p0"], Generated)
    out = PoolGenerator([model]).generate([items()[0], long], seed=0)
    assert [r.model for r in out[0].responses] == ["plain"] and out[0].generation_failures == ()
    assert out[1].responses == () and out[1].generation_failures == ("plain",)
    assert generation_metrics(out)["generation_failures"] == 1


def test_token_counts_are_the_model_tokens(tiny_models: dict[str, str]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["chat"])
    model = AutoModelForCausalLM.from_pretrained(tiny_models["chat"])
    eos = tokenizer.eos_token_id
    gen = TransformersGenerator(
        {"chat": tiny_models["chat"]}, max_new_tokens=12, batch_size=3, temperature=0.0
    )
    out = gen.generate(items(), seed=4)
    for item in out:
        response = item.responses[-1]
        rendered = tokenizer.apply_chat_template(
            item.prompt_messages(), add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(rendered, add_special_tokens=False, return_tensors="pt").input_ids
        assert response.prompt_tokens == ids.shape[1]
        greedy = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=eos)
        new = greedy[0, ids.shape[1] :].tolist()
        expected = new.index(eos) + 1 if eos in new else len(new)
        assert response.completion_tokens == expected
    metrics = generation_metrics(out)
    assert metrics["generation_prompt_tokens"] == sum(
        it.responses[-1].prompt_tokens or 0 for it in out
    )
    assert metrics["pool_responses"] == 5 and metrics["generation_failures"] == 0


def test_system_prompts_per_principle_reach_the_model(tiny_models: dict[str, str]) -> None:
    policy = SystemPromptPolicy(mode="ultrafeedback", principles=("honesty",))
    sampling = Sampling(max_new_tokens=6, temperature=0.0)
    with_prompts = TransformersModel(
        "chat", tiny_models["chat"], sampling=sampling, system_prompts=policy
    )
    without = TransformersModel("chat", tiny_models["chat"], sampling=sampling)
    lm = LoadedCausalLM.load("chat", tiny_models["chat"])
    planned, _ = with_prompts._plan(lm, items(), seed=2)
    by_id = {it.prompt_id: (text, principle) for it, text, _, principle in planned}
    honesty = set(PRINCIPLE_PROMPTS["honesty"])
    for pid in ("p0", "p2", "p3"):
        text, principle = by_id[pid]
        assert principle == "honesty"
        assert text.startswith("<|system|>") and text.split("<|user|>")[0][10:] in honesty
    assert by_id["p1"] == ("<|system|>be brief<|user|>how are you<|assistant|>", None)
    answered = with_prompts.answer(items(), seed=2)
    plain = without.answer(items(), seed=2)
    assert all(isinstance(a, Generated) for a in answered.values())
    assert [a.principle for a in answered.values() if isinstance(a, Generated)].count(
        "honesty"
    ) == 3
    assert answered["p1"] == plain["p1"]  # its own system message: the same input
    longer = [
        pid
        for pid in ("p0", "p2", "p3")
        if answered[pid].prompt_tokens > plain[pid].prompt_tokens  # type: ignore[union-attr,operator]
    ]
    assert longer == ["p0", "p2", "p3"]


def test_per_model_sampling_in_one_pool(tiny_models: dict[str, str]) -> None:
    greedy = TransformersModel(
        "greedy", tiny_models["plain"], sampling=Sampling(max_new_tokens=8, temperature=0.0)
    )
    seeded = TransformersModel(
        "seeded", tiny_models["plain"], sampling=Sampling(max_new_tokens=8, seed=11)
    )
    sampled = TransformersModel(
        "sampled", tiny_models["plain"], sampling=Sampling(max_new_tokens=8)
    )
    pool = PoolGenerator([greedy, seeded, sampled])
    a, b = pool.generate(items(), seed=1), pool.generate(items(), seed=2)
    assert texts(a, "greedy") == texts(b, "greedy")  # greedy: the seed does not matter
    assert texts(a, "seeded") == texts(b, "seeded")  # its own seed: the run's does not matter
    assert texts(a, "sampled") != texts(b, "sampled")
    assert texts(a, "seeded") != texts(a, "sampled")


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
