"""A run directory is a dataset ``datasets.load_dataset`` reads: card, typed columns, margin,
ties kept out of training, and nothing else of the run directory picked up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import concatenate_datasets, load_dataset

from prefloop import __version__
from prefloop.data.card import DatasetProvenance
from prefloop.data.records import PreferencePair, Response
from prefloop.data.run_dataset import dataset_file, margin_of, with_margin, write_run_dataset
from prefloop.data.writers import read_dataset

PROVENANCE = DatasetProvenance(
    run="demo",
    method="drts",
    judge={"kind": "oracle", "mode": "deterministic"},
    seed=7,
    budget={"maxAnnotations": 5, "maxRounds": None},
)


def _rows(n: int, *, rationale: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        tie = i % 3 == 0
        rows.append(
            PreferencePair(
                pair_id=f"p{i}",
                run="demo",
                round=i // 2,
                prompt_id=f"q{i}",
                prompt=f"prompt {i}",
                chosen=Response("a", f"good {i}", 0.5 if tie else 0.75),
                rejected=Response("b", f"bad {i}", 0.5 if tie else 0.25),
                chosen_index=0,
                rejected_index=1,
                acquisition="drts",
                judge="oracle",
                probability_chosen=0.5 if tie else 1.0,
                tie=tie,
                rationale=rationale,
            ).to_row()
        )
    return rows


def _load(run_dir: Path, tmp_path: Path, config: str | None = None) -> Any:
    return load_dataset(str(run_dir), config, cache_dir=str(tmp_path / "hf-cache"))


def _front_matter(run_dir: Path) -> dict[str, Any]:
    text = (run_dir / "README.md").read_text()
    assert text.startswith("---\n")
    front: dict[str, Any] = yaml.safe_load(text.split("---\n")[1])
    return front


def test_load_dataset_reads_the_training_pairs_and_nothing_else(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "demo"
    rows = _rows(7)
    written = write_run_dataset(run_dir, rows, PROVENANCE)
    # what else a run directory holds must not be mistaken for data
    (run_dir / "metrics.jsonl").write_text('{"round": 1, "annotations_used": 3}\n')
    (run_dir / "summary.json").write_text(json.dumps({"run": "demo"}))
    (run_dir / "checkpoints" / "round-0001").mkdir(parents=True)
    (run_dir / "checkpoints" / "round-0001" / "dataset.jsonl").write_text(json.dumps(rows[0]))
    (run_dir / "activerun.yaml").write_text("kind: ActiveRun\n")
    assert written == {
        "jsonl": dataset_file(run_dir),
        "parquet": dataset_file(run_dir, "parquet"),
        "ties_jsonl": dataset_file(run_dir, "jsonl", "ties"),
        "ties_parquet": dataset_file(run_dir, "parquet", "ties"),
        "card": run_dir / "README.md",
    }
    loaded = _load(run_dir, tmp_path)
    assert list(loaded) == ["train"]
    train = loaded["train"].to_list()
    expected = [with_margin(r) for r in rows if not r["tie"]]
    assert train == expected == read_dataset(dataset_file(run_dir))
    assert [r["pair_id"] for r in train] == ["p1", "p2", "p4", "p5"]
    ties = _load(run_dir, tmp_path, "ties")["train"].to_list()
    assert [r["pair_id"] for r in ties] == ["p0", "p3", "p6"] and all(r["tie"] for r in ties)
    assert ties == read_dataset(dataset_file(run_dir, "parquet", "ties"))


def test_card_carries_configs_features_and_provenance(tmp_path: Path) -> None:
    write_run_dataset(tmp_path, _rows(4), PROVENANCE, formats=("jsonl",))
    front = _front_matter(tmp_path)
    assert front["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train.jsonl"}],
            "default": True,
        },
        {"config_name": "ties", "data_files": [{"split": "train", "path": "data/ties.jsonl"}]},
    ]
    assert front["prefloop"] == {
        "run": "demo",
        "method": "drts",
        "judge": {"kind": "oracle", "mode": "deterministic"},
        "seed": 7,
        "budget": {"maxAnnotations": 5, "maxRounds": None},
        "source": "prefloop run",
        "prefloop_version": __version__,
        "pairs": 2,
        "ties": 2,
        "ties_policy": "separate",
    }
    features = {f["name"]: f for f in front["dataset_info"][0]["features"]}
    assert features["rationale"] == {"name": "rationale", "dtype": "string"}
    assert features["margin"]["dtype"] == "float64" and features["tie"]["dtype"] == "bool"
    assert [m["name"] for m in features["chosen"]["list"]] == ["role", "content"]
    body = (tmp_path / "README.md").read_text()
    assert "| seed | 7 |" in body and "`margin` is `chosen_score - rejected_score`" in body


def test_runs_with_and_without_rationales_load_with_one_schema(tmp_path: Path) -> None:
    """JSONL with an all-null rationale is string-typed through the card and concatenates."""
    plain, explained = tmp_path / "plain", tmp_path / "explained"
    write_run_dataset(plain, _rows(4), PROVENANCE, formats=("jsonl",))
    write_run_dataset(explained, _rows(4, rationale="why"), PROVENANCE, formats=("jsonl",))
    a, b = _load(plain, tmp_path)["train"], _load(explained, tmp_path)["train"]
    assert a.features == b.features
    assert a.features["rationale"].dtype == "string"
    both = concatenate_datasets([a, b])
    assert both["rationale"] == [None, None, "why", "why"]


@pytest.mark.parametrize(
    ("policy", "train_ids", "ties_file"),
    [("separate", ["p1", "p2"], True), ("include", ["p0", "p1", "p2", "p3"], False),
     ("drop", ["p1", "p2"], False)],
)  # fmt: skip
def test_ties_policy(tmp_path: Path, policy: Any, train_ids: list[str], ties_file: bool) -> None:
    write_run_dataset(tmp_path, _rows(4), PROVENANCE, ties=policy)
    assert [r["pair_id"] for r in read_dataset(dataset_file(tmp_path))] == train_ids
    assert dataset_file(tmp_path, "jsonl", "ties").exists() is ties_file
    assert [c["config_name"] for c in _front_matter(tmp_path)["configs"]] == (
        ["default", "ties"] if ties_file else ["default"]
    )
    assert [r["pair_id"] for r in _load(tmp_path, tmp_path)["train"]] == train_ids
    with pytest.raises(ValueError, match="ties policy must be one of"):
        write_run_dataset(tmp_path, _rows(4), PROVENANCE, ties="keep")  # type: ignore[arg-type]


def test_a_rewrite_removes_files_it_no_longer_produces(tmp_path: Path) -> None:
    write_run_dataset(tmp_path, _rows(4), PROVENANCE)
    assert dataset_file(tmp_path, "parquet", "ties").exists()
    no_ties = [r for r in _rows(6) if not r["tie"]]
    write_run_dataset(tmp_path, no_ties, PROVENANCE, formats=("jsonl",))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train.jsonl"]
    assert len(_load(tmp_path, tmp_path)["train"]) == 4


def test_margin_is_the_score_gap_or_the_judge_confidence() -> None:
    row = _rows(2)[1]
    assert margin_of(row) == pytest.approx(0.5)
    no_scores = {**row, "chosen_score": None, "rejected_score": None}
    assert margin_of({**no_scores, "probability_chosen": 0.8}) == pytest.approx(0.6)
    assert margin_of({**no_scores, "probability_chosen": None}) == 0.0
    assert margin_of({**row, "rejected_score": float("nan"), "probability_chosen": 1.0}) == 1.0
    reversed_label = {**row, "chosen_score": 0.25, "rejected_score": 0.75}
    assert margin_of(reversed_label) == pytest.approx(-0.5)
    out = with_margin({**row, "margin": 123.0})
    assert out["margin"] == pytest.approx(0.5)
    keys = list(out)
    assert keys.index("margin") == keys.index("probability_chosen") + 1


def test_dataset_file_names_the_layout_and_rejects_unknown_parts(tmp_path: Path) -> None:
    assert dataset_file(tmp_path) == tmp_path / "data" / "train.jsonl"
    assert dataset_file("runs/x", "parquet", "ties") == Path("runs/x/data/ties.parquet")
    with pytest.raises(ValueError, match="fmt must be one of"):
        dataset_file(tmp_path, "csv")
    with pytest.raises(ValueError, match="part must be one of"):
        dataset_file(tmp_path, "jsonl", "test")  # type: ignore[arg-type]
