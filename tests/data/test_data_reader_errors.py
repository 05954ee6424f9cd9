"""Every broken row is reported with its file, line (or row) and field, never dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from prefloop.data.errors import MAX_REPORTED_PROBLEMS, DataError
from prefloop.data.readers import load_prompt_items


def good_row(pid: str = "p1", n: int = 2) -> dict[str, Any]:
    return {
        "prompt_id": pid,
        "prompt": f"prompt {pid}",
        "responses": [{"model": f"m{i}", "text": f"answer {i}", "score": 0.5} for i in range(n)],
    }


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def errors_of(path: Path, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as info:
        load_prompt_items(path, **kwargs)
    return info.value


def test_bad_score_names_file_line_and_field(tmp_path: Path) -> None:
    rows = [json.dumps(good_row(f"p{i}")) for i in range(16)]
    bad = good_row("p16", n=4)
    bad["responses"][3]["score"] = "abc"
    path = write_lines(tmp_path / "x.jsonl", [*rows, json.dumps(bad)])
    err = errors_of(path)
    assert f"{path}:17: responses[3].score must be a number, got 'abc'" in str(err)
    assert len(err.problems) == 1
    assert err.problems[0].where == f"{path}:17"


def test_invalid_json_and_non_object_rows(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(good_row()), "{not json", "[1, 2]"])
    text = str(errors_of(path))
    assert f"{path}:2: invalid JSON" in text
    assert f"{path}:3: row must be a JSON object, got a list" in text
    assert text.startswith(f"2 problems in {path}:")


def test_invalid_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(json.dumps(good_row()).encode() + b"\n\xff\xfe{}\n")
    assert f"{path}:2: line is not valid UTF-8" in str(errors_of(path))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("prompt"), "prompt is missing"),
        (lambda r: r.update(prompt="   "), "prompt must be a non-empty string"),
        (lambda r: r.update(prompt=42), "prompt must be a string or a list of messages, got 42"),
        (
            lambda r: r.update(prompt=[{"role": "user"}]),
            "prompt[0].content must be a string, got None",
        ),
        (
            lambda r: r.update(prompt=[]),
            "prompt must be a non-empty list of {role, content} messages",
        ),
        (lambda r: r.update(prompt_id=""), "prompt_id must be a non-empty string"),
        (lambda r: r.update(prompt_id=[1]), "prompt_id must be a string, got [1]"),
        (lambda r: r.update(source=3), "source must be a string, got 3"),
        (
            lambda r: r["responses"].pop(),
            "responses must hold at least 2 responses to compare, got 1",
        ),
        (lambda r: r.update(responses="many"), "responses must be a list, got 'many'"),
        (lambda r: r["responses"].__setitem__(1, "x"), "responses[1] must be an object, got 'x'"),
        (lambda r: r["responses"][0].update(text=""), "responses[0].text must not be empty"),
        (lambda r: r["responses"][0].pop("text"), "responses[0].text must be a string, got None"),
        (
            lambda r: r["responses"][1].update(model=""),
            "responses[1].model must be a non-empty string",
        ),
        (
            lambda r: r["responses"][1].update(score=True),
            "responses[1].score must be a number, got True",
        ),
        (
            lambda r: r["responses"][1].update(score=float("nan")),
            "responses[1].score must be a finite number, got nan",
        ),
        (
            lambda r: r["responses"][1].update(score=float("inf")),
            "responses[1].score must be a finite number, got inf",
        ),
        (
            lambda r: r.update(completions=r["responses"]),
            "row has both 'responses' and 'completions'",
        ),
    ],
)
def test_row_problems(tmp_path: Path, mutate: Any, message: str) -> None:
    row = good_row()
    mutate(row)
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(good_row("p0")), json.dumps(row)])
    text = str(errors_of(path, kind="responses"))
    assert f"{path}:2: {message}" in text


def test_several_problems_in_one_row_are_all_reported(tmp_path: Path) -> None:
    row = good_row(n=3)
    row["responses"][0]["text"] = ""
    row["responses"][2]["score"] = "high"
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(row)])
    err = errors_of(path)
    assert [p.message for p in err.problems] == [
        "responses[0].text must not be empty",
        "responses[2].score must be a number, got 'high'",
    ]


def test_duplicate_prompt_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "x.jsonl",
        [json.dumps(good_row("a")), json.dumps(good_row("b")), json.dumps(good_row("a"))],
    )
    text = str(errors_of(path))
    assert f"{path}:3: prompt_id 'a' duplicates the one at {path}:1" in text


def test_duplicate_prompts_without_ids_collide(tmp_path: Path) -> None:
    rows = [{"prompt": "same", "chosen": "x", "rejected": "y"}] * 2
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(r) for r in rows])
    assert f"{path}:2: prompt_id" in str(errors_of(path))


def test_auto_kind_refuses_mixed_rows(tmp_path: Path) -> None:
    lines = [
        json.dumps(good_row("a")),
        json.dumps({"prompt": "only a prompt"}),
        json.dumps({"prompt": "q", "chosen": "x", "rejected": "y"}),
        json.dumps({"question": "?"}),
    ]
    path = write_lines(tmp_path / "x.jsonl", lines)
    err = errors_of(path)
    text = str(err)
    assert (
        f"{path}:2: row is a 'prompts' row but the first row ({path}:1) is a 'responses' row"
        in text
    )
    assert f"{path}:3: row is a 'pairs' row" in text
    assert f"{path}:4: cannot tell the row kind" in text
    assert len(err.problems) == 3


def test_explicit_kind_reports_missing_fields(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", [json.dumps({"prompt": "q"})])
    assert f"{path}:1: responses is missing" in str(errors_of(path, kind="responses"))
    text = str(errors_of(path, kind="pairs"))
    assert f"{path}:1: chosen is missing" in text and f"{path}:1: rejected is missing" in text


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (
            [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
            "chosen must be one assistant message (optionally after the prompt's messages), "
            "got 2 message(s)",
        ),
        ([{"role": "user", "content": "a"}], "chosen must be one assistant message"),
        ([{"role": "assistant", "content": " "}], "chosen[-1].content must not be empty"),
        (5, "chosen must be a string or a list of messages, got 5"),
        ("", "chosen must not be empty"),
    ],
)
def test_pair_side_problems(tmp_path: Path, chosen: Any, message: str) -> None:
    row = {"prompt": "q", "chosen": chosen, "rejected": "fine"}
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(row)])
    assert f"{path}:1: {message}" in str(errors_of(path, kind="pairs"))


def test_pair_model_names_must_be_strings(tmp_path: Path) -> None:
    row = {"prompt": "q", "chosen": "a", "rejected": "b", "rejected_model": 3}
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(row)])
    assert f"{path}:1: rejected_model must be a non-empty string, got 3" in str(errors_of(path))


def test_problem_count_is_capped_and_the_rest_counted(tmp_path: Path) -> None:
    lines = ["{oops"] * (MAX_REPORTED_PROBLEMS + 7)
    path = write_lines(tmp_path / "x.jsonl", lines)
    err = errors_of(path)
    assert len(err.problems) == MAX_REPORTED_PROBLEMS
    text = str(err)
    assert text.startswith(f"{MAX_REPORTED_PROBLEMS + 7} problems in {path}:")
    assert text.rstrip().endswith("... and 7 more")
    assert f"{path}:{MAX_REPORTED_PROBLEMS}: invalid JSON" in text
    assert f"{path}:{MAX_REPORTED_PROBLEMS + 1}:" not in text


def test_parquet_problems_name_the_row_index(tmp_path: Path) -> None:
    rows = [good_row("a"), good_row("b")]
    rows[1]["responses"][1]["text"] = ""
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert f"{path}[row 1]: responses[1].text must not be empty" in str(errors_of(path))


def test_hf_disk_problems_name_the_row_index(tmp_path: Path) -> None:
    rows = [good_row("a"), good_row("b"), good_row("c")]
    rows[2]["responses"] = rows[2]["responses"][:1]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    text = str(errors_of(tmp_path / "ds"))
    assert f"{tmp_path / 'ds'}[row 2]: responses must hold at least 2 responses" in text


def test_missing_empty_and_unreadable_files(tmp_path: Path) -> None:
    assert "no such file or directory" in str(errors_of(tmp_path / "nope.jsonl"))
    empty = write_lines(tmp_path / "empty.jsonl", [])
    assert re.search("holds no rows", str(errors_of(empty)))
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    assert "cannot read as Parquet" in str(errors_of(junk))
    (tmp_path / "plain_dir").mkdir()
    assert "cannot load with datasets.load_from_disk" in str(errors_of(tmp_path / "plain_dir"))
