"""write_dataset / read_dataset round trips, atomicity and the JSONL helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from prefloop.data.errors import DataError
from prefloop.data.records import PreferencePair, Response
from prefloop.data.run_dataset import with_margin
from prefloop.data.writers import (
    append_jsonl,
    read_dataset,
    write_dataset,
    write_jsonl_atomic,
)


def pair_rows() -> list[dict[str, Any]]:
    live = PreferencePair(
        pair_id="pair-a",
        run="run-1",
        round=0,
        prompt_id="p1",
        prompt="Write a haiku about rain.",
        chosen=Response("m1", "Soft rain on tin roofs\n— ünïcödé ✓", None),
        rejected=Response("m2", "Rain.", None),
        chosen_index=0,
        rejected_index=3,
        acquisition="dts",
        judge="llm",
        probability_chosen=0.75,
    )
    stored = PreferencePair(
        pair_id="pair-b",
        run="run-1",
        round=1,
        prompt_id="p2",
        prompt=({"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}),
        chosen=Response("m3", "Hello!", 0.9),
        rejected=Response("m1", "Go away.", 0.05),
        chosen_index=2,
        rejected_index=0,
        acquisition="deltaucb",
        judge="stored-score-oracle",
        tie=True,
        label_source="identity",
        rationale="friendlier",
    )
    return [live.to_row(), stored.to_row()]


def test_round_trip_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = pair_rows()
    paths = write_dataset(rows, tmp_path / "out")
    assert paths == {
        "jsonl": tmp_path / "out" / "dataset.jsonl",
        "parquet": tmp_path / "out" / "dataset.parquet",
    }
    for path in paths.values():
        assert read_dataset(path) == rows
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "dataset.jsonl",
        "dataset.parquet",
    ]


def test_parquet_keeps_types_of_all_none_columns(tmp_path: Path) -> None:
    rows = [pair_rows()[0]]  # chosen_score, rejected_score and rationale are None
    path = write_dataset(rows, tmp_path, formats=("parquet",), stem="live")["parquet"]
    schema = pq.read_schema(path)
    assert schema.field("chosen_score").type == pa.float64()
    assert schema.field("rationale").type == pa.string()
    assert schema.field("round").type == pa.int64()
    assert schema.field("prompt").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())])
    )
    assert read_dataset(path) == rows


def test_extra_columns_are_inferred(tmp_path: Path) -> None:
    rows = [dict(r, margin=i * 0.5, tags=["a", "b"][: i + 1]) for i, r in enumerate(pair_rows())]
    for path in write_dataset(rows, tmp_path).values():
        assert read_dataset(path) == rows


def test_output_loads_with_hugging_face_datasets(tmp_path: Path) -> None:
    paths = write_dataset(pair_rows(), tmp_path)
    for fmt, key in (("json", "jsonl"), ("parquet", "parquet")):
        ds = load_dataset(
            fmt, data_files=str(paths[key]), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert ds.num_rows == 2
        assert ds[1]["chosen"] == [{"role": "assistant", "content": "Hello!"}]
        assert ds[0]["prompt"] == [{"role": "user", "content": "Write a haiku about rain."}]


def test_empty_dataset_has_the_full_schema(tmp_path: Path) -> None:
    paths = write_dataset([], tmp_path)
    assert read_dataset(paths["jsonl"]) == []
    assert read_dataset(paths["parquet"]) == []
    assert set(with_margin(pair_rows()[0])) == set(pq.read_schema(paths["parquet"]).names)


def test_overwrite_is_atomic_and_failure_keeps_the_old_file(tmp_path: Path) -> None:
    rows = pair_rows()
    paths = write_dataset(rows, tmp_path)
    bad = [dict(rows[0], probability_chosen=float("nan"))]
    with pytest.raises(DataError, match="row 0 cannot be written as JSON"):
        write_dataset(bad, tmp_path, formats=("jsonl",))
    assert read_dataset(paths["jsonl"]) == rows
    broken = [dict(rows[0], round="first")]
    with pytest.raises(DataError, match=r"column 'round' \(row 0\) cannot be stored as int64"):
        write_dataset(broken, tmp_path, formats=("parquet",))
    assert read_dataset(paths["parquet"]) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.jsonl", "dataset.parquet"]
    write_dataset(rows[:1], tmp_path)
    assert read_dataset(paths["jsonl"]) == rows[:1] == read_dataset(paths["parquet"])


def test_rows_must_share_columns_and_message_shape(tmp_path: Path) -> None:
    rows = pair_rows()
    uneven = [rows[0], {k: v for k, v in rows[1].items() if k != "judge"}]
    with pytest.raises(
        DataError, match=r"row 1 has different columns from row 0 \(missing \['judge'\]"
    ):
        write_dataset(uneven, tmp_path, formats=("parquet",))
    odd = [dict(rows[0], chosen=[{"role": "assistant", "content": "x", "name": "bot"}])]
    with pytest.raises(DataError, match=r"\[row 0\]: chosen\[0\] must be a \{role, content\} dict"):
        write_dataset(odd, tmp_path, formats=("parquet",))


def test_argument_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats must be a non-empty subset"):
        write_dataset(pair_rows(), tmp_path, formats=("csv",))
    with pytest.raises(ValueError, match="formats must be a non-empty subset"):
        write_dataset(pair_rows(), tmp_path, formats=())
    with pytest.raises(ValueError, match="stem must be a plain file name"):
        write_dataset(pair_rows(), tmp_path, stem="a/b")


def test_write_jsonl_atomic_and_append(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "log.jsonl"
    assert write_jsonl_atomic(path, [{"a": 1}]) == path
    assert append_jsonl(path, [{"a": 2}, {"a": None}]) == 2
    assert append_jsonl(tmp_path / "new.jsonl", [{"b": "ü"}]) == 1
    assert read_dataset(path) == [{"a": 1}, {"a": 2}, {"a": None}]
    assert read_dataset(tmp_path / "new.jsonl") == [{"b": "ü"}]
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_append_refuses_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n" + '{"a": ', encoding="utf-8")
    with pytest.raises(DataError, match="last line is incomplete"):
        append_jsonl(path, [{"a": 2}])
    with pytest.raises(DataError, match=r"log\.jsonl:2: invalid JSON"):
        read_dataset(path)


def test_read_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "missing.parquet")
    weird = tmp_path / "x.csv"
    weird.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_dataset(weird)
