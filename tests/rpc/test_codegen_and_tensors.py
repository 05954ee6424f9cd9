"""Committed stubs match the protos; tensors and records survive the wire unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prefloop.data.records import PreferencePair, PromptItem, Response
from prefloop.judge.base import Judgement
from prefloop.rpc import codegen
from prefloop.rpc.convert import (
    RequestError,
    item_from_msg,
    item_to_msg,
    judgement_from_msg,
    judgement_to_msg,
    pair_from_msg,
    pair_to_msg,
)
from prefloop.rpc.tensors import TensorError, from_tensor, to_tensor


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = codegen.generate(tmp_path)
    committed = codegen.SERVICES_ROOT / codegen.PROTO_PACKAGE
    assert [p.name for p in fresh] == sorted(
        p.name for p in committed.iterdir() if p.suffix in {".py", ".pyi"}
    )
    stale = [p.name for p in fresh if p.read_bytes() != (committed / p.name).read_bytes()]
    assert not stale, f"stale stubs {stale}: run `python -m prefloop.rpc.codegen`"


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool", "int64", "int8"])
def test_tensor_round_trip(dtype: str) -> None:
    arr = (np.random.default_rng(0).normal(size=(3, 4, 2)) * 5).astype(dtype)
    back = from_tensor(to_tensor(arr), "x")
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_tensor_errors_name_the_field() -> None:
    t = to_tensor(np.zeros((2, 3)))
    with pytest.raises(TensorError, match=r"est\.mean\.shape: expected \(2, 4\)"):
        from_tensor(t, "est.mean", shape=(2, 4))
    with pytest.raises(TensorError, match=r"est\.mean\.shape: expected 3 dimensions"):
        from_tensor(t, "est.mean", ndim=3)
    with pytest.raises(TensorError, match="kinds"):
        from_tensor(t, "mask", kinds="b")
    t.dtype = "complex128"
    with pytest.raises(TensorError, match=r"mask\.dtype"):
        from_tensor(t, "mask")
    t = to_tensor(np.zeros(4))
    t.data = t.data[:-1]
    with pytest.raises(TensorError, match=r"v\.data: 31 bytes"):
        from_tensor(t, "v")


def test_records_round_trip() -> None:
    chat = PromptItem(
        "c1",
        ({"role": "user", "content": "hi"},),
        (Response("a", "x", None), Response("b", "y", 0.5)),
    )
    assert item_from_msg(item_to_msg(chat), "p") == chat
    plain = PromptItem("p1", "hello", (Response("a", "x", 1.0),), "src")
    assert item_from_msg(item_to_msg(plain), "p") == plain
    j = Judgement("id", 1, 0.25, None, 0.7, True, None, {"help": 1.0})
    assert judgement_from_msg(judgement_to_msg(j)) == j
    pair = PreferencePair(
        "pp", "run", 2, "c1", chat.prompt, Response("b", "y", 0.5), Response("a", "x", None),
        1, 0, "delta_ucb", "oracle", 0.8, False, "judge", "because",
    )  # fmt: skip
    assert pair_from_msg(pair_to_msg(pair), "pairs[0]") == pair
    bad = item_to_msg(plain)
    bad.prompt_id = ""
    with pytest.raises(RequestError, match=r"prompts\[3\]\.prompt_id"):
        item_from_msg(bad, "prompts[3]")
