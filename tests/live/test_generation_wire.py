"""Generated responses keep their token counts, principle and the prompt's failures on the wire.

In service mode the generation service's answers reach the driver as ``prefloop.v1.Prompt``
messages, and the completions topic carries them as JSON; both must keep what the embedded run
keeps, or the round metrics (generation tokens, cost, failures) would differ between modes.
"""

from __future__ import annotations

import json

import pytest

from prefloop.bus.payloads import PayloadError, completion_value, item_from_completion
from prefloop.data.records import PromptItem, Response
from prefloop.rpc.convert import item_from_msg, item_to_msg
from prefloop.v1 import common_pb2

ITEM = PromptItem(
    "p1",
    ({"role": "user", "content": "hello"},),
    (
        Response("a", "hi there", None, prompt_tokens=12, completion_tokens=3, principle="honesty"),
        Response("stored", "kept", 0.5),
        Response("b", "", None, prompt_tokens=0, completion_tokens=0),
    ),
    source="sharegpt",
    generation_failures=("c", "d"),
)


def test_the_grpc_messages_keep_tokens_principle_and_failures() -> None:
    wire = item_to_msg(ITEM).SerializeToString()
    back = item_from_msg(common_pb2.Prompt.FromString(wire), "prompts[0]")
    assert back == ITEM
    assert back.responses[1].prompt_tokens is None  # unset stays unset, not 0
    assert back.responses[2].prompt_tokens == 0  # a zero count stays a zero


def test_the_completions_topic_keeps_them() -> None:
    value = json.loads(json.dumps(completion_value(3, ITEM)))
    assert item_from_completion(value) == ITEM
    older = json.loads(json.dumps(value))
    del older["generation_failures"]
    for r in older["responses"]:
        for key in ("prompt_tokens", "completion_tokens", "principle"):
            del r[key]
    plain = item_from_completion(older)
    assert plain.generation_failures == () and plain.responses[0] == Response("a", "hi there")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda v: v["responses"][0].update(prompt_tokens="12"), "prompt_tokens must be int"),
        (lambda v: v["responses"][0].update(completion_tokens=True), "completion_tokens"),
        (lambda v: v["responses"][0].update(principle=3), "principle must be str"),
        (lambda v: v.update(generation_failures="c"), "generation_failures must be a list"),
    ],
)
def test_bad_completion_fields_are_named(change: object, words: str) -> None:
    value = json.loads(json.dumps(completion_value(0, ITEM)))
    change(value)  # type: ignore[operator]
    with pytest.raises(PayloadError, match=words):
        item_from_completion(value)
