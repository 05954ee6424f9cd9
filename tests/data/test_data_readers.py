"""load_prompt_items: every format and row kind, and the shipped data files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict

from prefloop.data.errors import DataError
from prefloop.data.readers import load_prompt_items
from prefloop.data.records import PreferencePair, PromptItem, Response, stable_id
from prefloop.data.rows import chosen_goes_second, prompt_key
from prefloop.data.writers import write_dataset

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def response_rows() -> list[dict[str, Any]]:
    return [
        {
            "prompt_id": "p1",
            "prompt": "Name a colour.",
            "source": "toy",
            "responses": [
                {"model": "m1", "text": "Red.", "score": 0.9},
                {"model": "m2", "text": "Blue.", "score": 0.1},
                {"model": "m3", "text": "Seven.", "score": 0.0},
            ],
        },
        {
            "prompt_id": "p2",
            "prompt": "Say hi.",
            "source": "toy",
            "responses": [
                {"model": "m1", "text": "Hi!", "score": 0.5},
                {"model": "m2", "text": "Hello.", "score": 0.75},
            ],
        },
    ]


EXPECTED = [
    PromptItem(
        "p1",
        "Name a colour.",
        (Response("m1", "Red.", 0.9), Response("m2", "Blue.", 0.1), Response("m3", "Seven.", 0.0)),
        "toy",
    ),
    PromptItem(
        "p2", "Say hi.", (Response("m1", "Hi!", 0.5), Response("m2", "Hello.", 0.75)), "toy"
    ),
]


# --- shipped data -----------------------------------------------------------------------------


def test_shipped_sample100_has_100_prompts_with_16_scored_responses() -> None:
    items = load_prompt_items(SHIPPED / "alpacaeval" / "sample100.jsonl")
    assert len(items) == 100
    assert all(len(it.responses) == 16 for it in items)
    assert items[0].prompt_id == "ae-005461fdc44b"
    assert all(it.source.startswith("alpaca_eval/") for it in items)
    scores = [r.score for it in items for r in it.responses]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert len({r.model for it in items for r in it.responses}) == 16


def test_shipped_sample100_is_the_head_of_dev() -> None:
    dev = load_prompt_items(SHIPPED / "alpacaeval" / "dev.jsonl")
    sample = load_prompt_items(SHIPPED / "alpacaeval" / "sample100.jsonl")
    assert len(dev) == 570
    assert len({it.prompt_id for it in dev}) == 570
    assert dev[:100] == sample


def test_shipped_hh_pairs_load_as_two_response_items() -> None:
    path = SHIPPED / "hh_rlhf" / "harmless_dev.jsonl"
    items = load_prompt_items(path)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(items) == 1606
    second = 0
    for item, row in zip(items, raw, strict=True):
        assert len(item.responses) == 2
        assert sorted(r.score for r in item.responses) == [0.0, 1.0]
        chosen = next(r for r in item.responses if r.score == 1.0)
        rejected = next(r for r in item.responses if r.score == 0.0)
        assert chosen.text == row["chosen"] and rejected.text == row["rejected"]
        assert {r.model for r in item.responses} == {"unknown"}
        assert item.prompt_id == stable_id(row["prompt"])
        assert item.source == "harmless-base"
        second += item.responses[1].score == 1.0
    # the chosen answer is not always first: roughly half the pairs put it second
    assert 0.4 * 1606 < second < 0.6 * 1606


def test_shipped_files_have_license_notices() -> None:
    for sub, needle in (
        ("alpacaeval", "CC BY-NC 4.0"),
        ("hh_rlhf", "Copyright (c) 2022 Anthropic"),
    ):
        assert needle in (SHIPPED / sub / "LICENSE-DATA").read_text(encoding="utf-8")
    readme = (SHIPPED / "README.md").read_text(encoding="utf-8")
    assert "cd543a149df89434d8a54582c0151c0b945c3d20" in readme
    assert "354e5c3cb8960630860dd5774a6ac2a58313bf4d" in readme


# --- formats ----------------------------------------------------------------------------------


def test_jsonl_responses_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", response_rows())
    assert load_prompt_items(path) == EXPECTED
    assert load_prompt_items(str(path), format="jsonl", kind="responses") == EXPECTED


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in response_rows())
    assert load_prompt_items(path) == EXPECTED


def test_blank_lines_are_not_rows(tmp_path: Path) -> None:
    rows = response_rows()
    text = "\n" + json.dumps(rows[0]) + "\n\n  \n" + json.dumps(rows[1]) + "\n\n"
    path = tmp_path / "x.jsonl"
    path.write_text(text, encoding="utf-8")
    assert load_prompt_items(path) == EXPECTED


def test_parquet_matches_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(response_rows()), path)
    assert load_prompt_items(path) == EXPECTED


def test_hf_disk_matches_jsonl(tmp_path: Path) -> None:
    Dataset.from_list(response_rows()).save_to_disk(str(tmp_path / "ds"))
    assert load_prompt_items(tmp_path / "ds") == EXPECTED
    assert load_prompt_items(tmp_path / "ds", format="hf_disk") == EXPECTED


def test_hf_dataset_dict_with_one_split_is_accepted(tmp_path: Path) -> None:
    DatasetDict({"train": Dataset.from_list(response_rows())}).save_to_disk(str(tmp_path / "dd"))
    assert load_prompt_items(tmp_path / "dd") == EXPECTED


def test_hf_dataset_dict_with_several_splits_is_refused(tmp_path: Path) -> None:
    ds = Dataset.from_list(response_rows())
    DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"several splits \(train, test\)"):
        load_prompt_items(tmp_path / "dd")


def test_unknown_suffix_needs_explicit_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.txt", response_rows())
    with pytest.raises(DataError, match="cannot tell the format"):
        load_prompt_items(path)
    assert load_prompt_items(path, format="jsonl") == EXPECTED


def test_limit_reads_a_prefix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", response_rows())
    assert load_prompt_items(path, limit=1) == EXPECTED[:1]
    assert load_prompt_items(path, limit=0) == []
    assert load_prompt_items(path, limit=10) == EXPECTED


def test_limit_stops_before_later_broken_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(response_rows()[0]) + "\n{broken\n", encoding="utf-8")
    assert load_prompt_items(path, limit=1) == EXPECTED[:1]


# --- kinds ------------------------------------------------------------------------------------


def test_completions_rows_as_in_activeultrafeedback(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    row = {
        "prompt_id": "uf-1",
        "prompt": messages,
        "source": "flan",
        "completions": [
            {"model": "qwen", "response_text": "4", "overall_score": 4.75, "principle": "x"},
            {"model": "llama", "response_text": "5", "overall_score": 1, "annotations": []},
        ],
    }
    (item,) = load_prompt_items(write_jsonl(tmp_path / "uf.jsonl", [row]))
    assert item.prompt == tuple(messages)
    assert item.responses == (Response("qwen", "4", 4.75), Response("llama", "5", 1.0))
    assert item.source == "flan"


def test_scores_are_optional_for_live_judges(tmp_path: Path) -> None:
    row = {"prompt": "q", "responses": [{"model": "a", "text": "x"}, {"model": "b", "text": "y"}]}
    (item,) = load_prompt_items(write_jsonl(tmp_path / "x.jsonl", [row]))
    assert [r.score for r in item.responses] == [None, None]


def test_prompt_only_rows_get_stable_ids(tmp_path: Path) -> None:
    msgs = [{"role": "user", "content": "Hi", "name": "dropped"}]
    rows = [
        {"prompt": "Tell a joke."},
        {"prompt": msgs, "source": "chat"},
        {"prompt_id": 7, "prompt": "x"},
    ]
    items = load_prompt_items(write_jsonl(tmp_path / "p.jsonl", rows))
    assert items[0] == PromptItem(stable_id("Tell a joke."), "Tell a joke.")
    assert items[1].prompt == ({"role": "user", "content": "Hi"},)
    assert items[1].prompt_id == stable_id(prompt_key(({"role": "user", "content": "Hi"},)))
    assert items[1].source == "chat"
    assert items[2].prompt_id == "7"
    assert all(it.responses == () for it in items)


def test_kind_prompts_ignores_stored_responses(tmp_path: Path) -> None:
    items = load_prompt_items(write_jsonl(tmp_path / "x.jsonl", response_rows()), kind="prompts")
    assert [(it.prompt_id, it.prompt, it.responses) for it in items] == [
        ("p1", "Name a colour.", ()),
        ("p2", "Say hi.", ()),
    ]


def test_string_pairs_with_model_names(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "chosen_model": "big"}
        for i in range(40)
    ]
    items = load_prompt_items(write_jsonl(tmp_path / "pairs.jsonl", rows))
    positions = set()
    for i, item in enumerate(items):
        by_score = {r.score: r for r in item.responses}
        assert by_score[1.0] == Response("big", f"good {i}", 1.0)
        assert by_score[0.0] == Response("unknown", f"bad {i}", 0.0)
        second = chosen_goes_second(item.prompt_id)
        assert item.responses[1 if second else 0].score == 1.0
        positions.add(second)
    assert positions == {True, False}


def test_pair_order_is_deterministic_per_prompt_id(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(20)]
    first = load_prompt_items(write_jsonl(tmp_path / "a.jsonl", rows))
    again = load_prompt_items(write_jsonl(tmp_path / "b.jsonl", list(reversed(rows))))
    assert first == list(reversed(again))


def test_trl_conversational_pairs(tmp_path: Path) -> None:
    prompt = [{"role": "user", "content": "Capital of France?"}]
    answer_a = [{"role": "assistant", "content": "Paris."}]
    answer_b = [{"role": "assistant", "content": "Lyon."}]
    rows = [
        {"prompt_id": "explicit", "prompt": prompt, "chosen": answer_a, "rejected": answer_b},
        # ActiveUltraFeedback's output repeats the prompt inside chosen / rejected
        {
            "prompt_id": "implicit",
            "prompt": prompt,
            "chosen": prompt + answer_a,
            "rejected": prompt + answer_b,
        },
    ]
    items = load_prompt_items(write_jsonl(tmp_path / "trl.jsonl", rows))
    for item in items:
        assert item.prompt == tuple(prompt)
        assert {(r.text, r.score) for r in item.responses} == {("Paris.", 1.0), ("Lyon.", 0.0)}


def test_written_output_reads_back_as_a_pair_pool(tmp_path: Path) -> None:
    pair = PreferencePair(
        pair_id="x1",
        run="r",
        round=0,
        prompt_id="p9",
        prompt="Why?",
        chosen=Response("m1", "Because.", 0.8),
        rejected=Response("m2", "No.", 0.2),
        chosen_index=0,
        rejected_index=1,
        acquisition="random",
        judge="oracle",
    )
    paths = write_dataset([pair.to_row()], tmp_path)
    for path in paths.values():
        (item,) = load_prompt_items(path)
        assert item.prompt_id == "p9"
        assert set(item.responses) == {Response("m1", "Because.", 1.0), Response("m2", "No.", 0.0)}


def test_a_pair_needs_both_sides(tmp_path: Path) -> None:
    rows = [{"prompt": "q", "chosen": "yes"}]
    with pytest.raises(DataError, match=r"p\.jsonl:1: rejected is missing"):
        load_prompt_items(write_jsonl(tmp_path / "p.jsonl", rows))


def test_argument_validation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", response_rows())
    with pytest.raises(ValueError, match="format must be one of"):
        load_prompt_items(path, format="csv")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be one of"):
        load_prompt_items(path, kind="triples")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be"):
        load_prompt_items(path, limit=-1)
