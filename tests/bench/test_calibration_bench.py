"""``prefloop bench calibration`` end to end on a few real AlpacaEval prompts, through the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prefloop.bench.calibration import CalibrationConfigError, labelled_pairs, parse_variant
from prefloop.cli import main

REPO = Path(__file__).resolve().parents[2]
SMALL = "trainer.maxStepsPerRound=5"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[:16]
    path = tmp_path_factory.mktemp("data") / "tiny.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.model
def test_calibration_bench_writes_tables_and_reliability_diagram(
    tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "calibration"
    status = main(
        [
            "bench", "calibration", "--data", str(tiny_data),
            "--variant", f"ensemble:rewardModel.head.numHeads=3;{SMALL}",
            "--variant", f"epinet:rewardModel.head.kind=epinet;{SMALL}",
            "--variant", f"bgpm:rewardModel.head.kind=bgpm;{SMALL}",
            "--labels", "4,8", "--batch-size", "4", "--folds", "2",
            "--max-length-tokens", "32", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    rows = _rows(out / "calibration.csv")
    # 3 variants x 2 folds x 2 label counts
    assert len(rows) == 12
    assert {(r["variant"], r["labels"]) for r in rows} == {
        (v, n) for v in ("ensemble", "epinet", "bgpm") for n in ("4", "8")
    }
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert 0.0 <= float(r["ece"]) <= 0.5
        assert float(r["nll"]) > 0
        assert float(r["mean_sigma"]) > 0
        assert -1.0 <= float(r["sigma_error_spearman"]) <= 1.0
    # 16 prompts x 16 responses in 2 folds: about 8 x 120 held-out pairs each, ties aside
    assert all(500 < float(r["num_pairs"]) <= 8 * 120 for r in rows)
    summary = _rows(out / "calibration_summary.csv")
    assert len(summary) == 6 and all(s["runs"] == "2" for s in summary)
    bins = _rows(out / "reliability.csv")
    assert len(bins) == 3 * 2 * 10
    assert "| bgpm | 8 |" in (out / "calibration.md").read_text()
    with Image.open(out / "reliability.png") as im:
        im.verify()


def test_a_variant_with_a_bad_field_is_refused_with_its_name(
    tiny_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        SystemExit, match=r"(?s)--variant wide.*numHeads.*greater than or equal to 2"
    ):
        main(
            [
                "bench", "calibration", "--data", str(tiny_data),
                "--variant", "ensemble", "--variant", "wide:rewardModel.head.numHeads=1",
                "--folds", "2",
                "--labels", "4", "--out", str(tmp_path / "bad"),
            ]
        )  # fmt: skip
    with pytest.raises(CalibrationConfigError, match="head kind"):
        parse_variant("mystery")
    with pytest.raises(SystemExit, match="--labels 12 exceeds the 8 training prompts"):
        main(
            [
                "bench", "calibration", "--data", str(tiny_data), "--folds", "2",
                "--labels", "4,12", "--out", str(tmp_path / "too-many"),
            ]
        )  # fmt: skip


def test_labelled_pairs_take_one_untied_pair_per_prompt_winner_first() -> None:
    scores = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 2.0], [3.0, 0.0, np.nan]])
    mask = np.array([[True] * 3, [True] * 3, [True, True, False]])
    for seed in range(10):
        pairs = labelled_pairs(scores, mask, np.array([0, 1, 2]), np.random.default_rng(seed))
        assert [p for p, _, _ in pairs] == [1, 2]  # prompt 0 is all ties
        for p, win, lose in pairs:
            assert scores[p, win] > scores[p, lose]
