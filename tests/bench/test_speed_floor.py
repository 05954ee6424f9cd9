"""``prefloop bench speed --against-floor``: each rule timed against its pair-score matrix."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from prefloop.acquisition.delta_ucb import optimistic_gap
from prefloop.bench.speed import FLOOR_OF, floor_kind, pair_score_floor, synthetic_input, time_rule
from prefloop.cli import main

RULES = ["delta_ucb", "infomax", "maxmin_lcb", "maxmin", "random", "us_dpo"]


def test_against_floor_reports_a_ratio_per_rule_and_size(tmp_path: Path) -> None:
    out = tmp_path / "speed"
    status = main(
        [
            "bench", "speed", "--prompts", "20,40", "--responses", "3,5", "--methods",
            ",".join(RULES), "--repeats", "2", "--against-floor", "--acquisition-only",
            "--clock", "cpu", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    with (out / "acquisition.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["rule"], int(r["prompts"]), int(r["responses"])) for r in rows} == {
        (rule, p, n) for rule in RULES for p in (20, 40) for n in (3, 5)
    }
    for r in rows:
        assert r["floor"] == FLOOR_OF.get(r["rule"], "mean_gap") and r["clock"] == "cpu"
        seconds, floor_seconds = float(r["seconds"]), float(r["floor_seconds"])
        assert seconds >= 0 and floor_seconds >= 0
        if floor_seconds > 0:  # the CPU clock can read 0 for a tiny floor
            assert float(r["floor_ratio"]) == pytest.approx(seconds / floor_seconds)
        assert r["within_3x_floor"] == str(float(r["floor_ratio"]) <= 3.0)
    md = (out / "speed.md").read_text(encoding="utf-8")
    assert "median CPU seconds per call" in md
    assert "| floor | floor s | x floor | <= 3x |" in md
    assert md.count("| optimistic_gap |") == 4  # delta_ucb at 2 x 2 sizes
    assert "Skipped (`--acquisition-only`)" in md
    assert not (out / "scoring.csv").exists() and not (out / "training.csv").exists()


def test_without_the_flag_rows_carry_no_floor_columns() -> None:
    row = time_rule("delta_ucb", 10, 4, repeats=1)
    assert "floor_ratio" not in row and row["seconds"] > 0 and row["clock"] == "wall"


def test_floors_are_the_rules_pair_score_matrices() -> None:
    g = np.random.default_rng(0)
    needs = frozenset({"judge_scores"})
    inputs = synthetic_input(6, 5, g, needs)
    mean, std = inputs.mean, inputs.std
    np.testing.assert_array_equal(
        pair_score_floor(floor_kind("delta_quantile"), inputs), optimistic_gap(mean, std, 1.0)
    )
    width = pair_score_floor(floor_kind("infomax"), inputs)
    i, j = 2, 4
    want = expit(mean[0, i] + std[0, i] - mean[0, j] + std[0, j]) - expit(
        mean[0, i] - std[0, i] - mean[0, j] - std[0, j]
    )
    assert width[0, i, j] == pytest.approx(want)
    lcb = pair_score_floor("lcb", inputs)
    assert lcb[1, i, j] == pytest.approx(mean[1, i] - mean[1, j] - std[1, i] - std[1, j])
    judge = pair_score_floor(floor_kind("maxmin"), inputs)
    assert inputs.judge_scores is not None
    assert judge[3, i, j] == pytest.approx(inputs.judge_scores[3, i] - inputs.judge_scores[3, j])
    assert pair_score_floor(floor_kind("dts"), inputs)[0, i, j] == mean[0, i] - mean[0, j]
