"""The benches' pool-scope options: rule@pool labels, per-method parameters, the timed pool
round of ``bench speed``, and a tiny label-efficiency bench comparing both scopes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from prefloop.bench.scope_options import (
    ScopeOptionError,
    params_for,
    parse_method_params,
    split_label,
    with_scope,
)
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset

REPO = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_scope_labels_keep_random_as_the_batch_reference() -> None:
    assert with_scope(["random", "drts"], "batch") == ["random", "drts"]
    assert with_scope(["random", "drts", "dts@pool"], "pool") == ["random", "drts@pool", "dts@pool"]
    assert with_scope(["random", "drts"], "both") == ["random", "drts", "drts@pool"]
    assert split_label("drts@pool") == ("drts", "pool")
    with pytest.raises(ScopeOptionError, match="only scope suffix"):
        split_label("drts@batch")


def test_method_params_parse_and_the_label_overrides_the_rule() -> None:
    params = parse_method_params("drts:beta=2, drts@pool:beta=0.5,delta_ucb:beta=1")
    assert params_for("drts", params) == {"beta": 2}
    assert params_for("drts@pool", params) == {"beta": 0.5}
    assert params_for("random", params) == {}
    with pytest.raises(ScopeOptionError, match="METHOD:NAME=VALUE"):
        parse_method_params("drts=2")


def test_speed_bench_times_a_pool_round(tmp_path: Path) -> None:
    out = tmp_path / "speed"
    status = main(
        [
            "bench", "speed", "--prompts", "300", "--responses", "4", "--methods", "random",
            "--repeats", "1", "--acquisition-only", "--pool-rules", "delta_ucb,drts",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    rows = _rows(out / "pool_scope.csv")
    assert {(r["rule"], r["diversity"]) for r in rows} == {
        (rule, d) for rule in ("delta_ucb", "drts") for d in ("none", "clusters")
    }
    assert all(int(r["prompts_chosen"]) == 64 for r in rows)
    assert all(0 < float(r["ranking_seconds"]) <= float(r["seconds"]) for r in rows)
    assert "## Pool scope" in (out / "speed.md").read_text()


@pytest.mark.model
def test_label_efficiency_runs_a_rule_in_both_scopes(tmp_path: Path) -> None:
    lines = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[:24]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    status = main(
        [
            "bench", "label-efficiency", "--data", str(data), "--methods", "random,drts",
            "--scope", "both", "--candidate-pool-size", "12", "--diversity", "clusters",
            "--params", "drts@pool:beta=2", "--seeds", "1", "--budget", "12", "--batch-size",
            "6", "--max-length-tokens", "64", "--num-heads", "4", "--epochs-per-round", "2",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    assert {p["method"] for p in _rows(out / "points.csv")} == {"random", "drts", "drts@pool"}
    manifest = yaml.safe_load((out / "runs/drts@pool-s0/activerun.yaml").read_text())
    acquisition = manifest["spec"]["acquisition"]
    assert acquisition["scope"] == "pool" and acquisition["candidatePoolSize"] == 12
    assert acquisition["diversity"] == "clusters" and acquisition["params"] == {"beta": 2}
    batch = yaml.safe_load((out / "runs/drts-s0/activerun.yaml").read_text())
    assert batch["spec"]["acquisition"]["scope"] == "batch"
    rows = read_dataset(dataset_file(out / "runs/drts@pool-s0"))
    assert len(rows) == len({r["prompt_id"] for r in rows}) == 12
