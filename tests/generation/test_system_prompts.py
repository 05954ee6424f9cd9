"""UltraFeedback system prompts: principle by source, seeded per (seed, model, prompt), files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from prefloop.data.records import PromptItem
from prefloop.generation.system_prompts import (
    PRINCIPLE_PROMPTS,
    PRINCIPLES,
    SystemPromptPolicy,
    load_principle_prompts,
    principles_for_source,
)

UF = SystemPromptPolicy(mode="ultrafeedback")


def prompts(source: str, n: int) -> list[PromptItem]:
    return [PromptItem(f"{source}-{i}", f"question {i}", source=source) for i in range(n)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("truthful_qa", {"honesty", "truthfulness"}),
        ("false_qa", {"honesty", "truthfulness"}),
        ("sharegpt", {"helpfulness", "honesty", "truthfulness"}),
        ("ultrachat", {"helpfulness", "honesty", "truthfulness"}),
        ("flan_v2_niv2", {"helpfulness", "verbalized_calibration"}),
        ("evol_instruct", {"helpfulness"}),
        ("alpaca_eval", {"helpfulness", "honesty", "truthfulness"}),
        ("", {"helpfulness", "honesty", "truthfulness"}),
    ],
)
def test_the_principle_is_drawn_by_source(source: str, expected: set[str]) -> None:
    assert set(principles_for_source(source)) == expected
    drawn = Counter()
    for item in prompts(source, 300):
        chosen = UF.choose(0, "m", item)
        assert chosen is not None
        principle, text = chosen
        assert text in PRINCIPLE_PROMPTS[principle]
        drawn[principle] += 1
    assert set(drawn) == expected  # every allowed principle is used, no other
    assert min(drawn.values()) > 300 / len(expected) / 2  # roughly uniform


def test_the_draw_is_seeded_per_seed_model_and_prompt() -> None:
    items = prompts("sharegpt", 40)
    first = [UF.choose(3, "m", it) for it in items]
    assert first == [UF.choose(3, "m", it) for it in items]
    assert first[::-1] == [UF.choose(3, "m", it) for it in reversed(items)]
    assert first != [UF.choose(4, "m", it) for it in items]
    assert first != [UF.choose(3, "other", it) for it in items]
    texts = {c[1] for c in first if c is not None}
    assert len(texts) > 5  # several prompts of a principle are used


def test_named_principles_replace_the_source_table() -> None:
    policy = SystemPromptPolicy(mode="ultrafeedback", principles=("harmlessness",))
    for item in prompts("evol_instruct", 20):
        chosen = policy.choose(0, "m", item)
        assert chosen is not None and chosen[0] == "harmlessness"
        assert chosen[1] in PRINCIPLE_PROMPTS["harmlessness"]


def test_no_system_prompt_when_off_or_when_the_prompt_has_one() -> None:
    item = PromptItem("p", "hi", source="sharegpt")
    assert SystemPromptPolicy().messages(0, "m", item) == (
        [{"role": "user", "content": "hi"}],
        None,
    )
    own = PromptItem(
        "q", ({"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"})
    )
    assert UF.messages(0, "m", own) == (own.prompt_messages(), None)
    messages, principle = UF.messages(0, "m", item)
    assert principle is not None and messages[0]["role"] == "system"
    assert messages[1:] == [{"role": "user", "content": "hi"}]


def test_every_principle_has_texts_of_its_own() -> None:
    assert set(PRINCIPLE_PROMPTS) == set(PRINCIPLES)
    all_texts = [t for texts in PRINCIPLE_PROMPTS.values() for t in texts]
    assert len(all_texts) == len(set(all_texts))
    assert all(len(t) > 40 for t in all_texts)
    assert "%" in PRINCIPLE_PROMPTS["verbalized_calibration"][0]


def test_prompts_from_a_file_override_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "principles.json"
    path.write_text(json.dumps({"helpfulness": ["Help, precisely."]}))
    loaded = load_principle_prompts(path)
    assert loaded == {"helpfulness": ("Help, precisely.",)}
    policy = SystemPromptPolicy(
        mode="ultrafeedback", principles=("helpfulness",), prompts={**PRINCIPLE_PROMPTS, **loaded}
    )
    assert policy.choose(0, "m", PromptItem("p", "x")) == ("helpfulness", "Help, precisely.")
    yml = tmp_path / "p.yaml"
    yml.write_text("honesty:\n  - Say when you do not know.\n")
    assert load_principle_prompts(yml) == {"honesty": ("Say when you do not know.",)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"kindness": ["x"]}', "unknown principle 'kindness'"),
        ('{"honesty": []}', "honesty: expected a non-empty list"),
        ('{"honesty": ["ok", ""]}', "every system prompt must be a non-empty string"),
        ("[1, 2]", "expected a mapping"),
        ("{not json", "cannot read system prompts"),
    ],
)
def test_bad_prompt_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        load_principle_prompts(path)
    assert str(path) in str(err.value)


def test_a_policy_without_texts_for_a_drawable_principle_is_refused() -> None:
    with pytest.raises(ValueError, match="no system prompts for principle"):
        SystemPromptPolicy(mode="ultrafeedback", prompts={"helpfulness": ("x",)})
    with pytest.raises(ValueError, match="unknown principle"):
        SystemPromptPolicy(mode="ultrafeedback", principles=("kindness",))
    SystemPromptPolicy(mode="none", prompts={})  # nothing is drawn: nothing needed
