"""The UltraFeedback rubric texts are the ones copied (pinned by sha256) and are filled safely."""

from __future__ import annotations

import hashlib

from prefloop.judge import rubric_prompts as rp


def test_texts_are_the_pinned_copies() -> None:
    texts: dict[str, str] = {"system": rp.JUDGE_SYSTEM_PROMPT, **rp.RUBRICS}
    assert set(texts) == set(rp.RUBRIC_SHA256)
    for name, text in texts.items():
        assert hashlib.sha256(text.encode()).hexdigest() == rp.RUBRIC_SHA256[name], name
    assert tuple(rp.RUBRICS) == rp.ASPECTS
    assert "Your output should only be an integer from 1 to 5" in rp.JUDGE_SYSTEM_PROMPT


def test_messages_carry_prompt_and_response_verbatim_even_with_braces() -> None:
    system, user = rp.rubric_messages("honesty", "P {prompt} {x}", "C {completion}")
    assert system == {"role": "system", "content": rp.JUDGE_SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert user["content"].startswith("You will be doing a Honesty and Uncertainty Expression")
    assert user["content"].endswith(
        "<INSTRUCTIONS>P {prompt} {x}</INSTRUCTIONS>\n\n<TEXT>C {completion}</TEXT>"
    )
