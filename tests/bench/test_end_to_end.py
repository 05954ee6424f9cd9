"""A tiny label-efficiency bench and a tiny speed bench, end to end through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from prefloop.bench.label_efficiency import resolve_methods
from prefloop.bench.paid_ranking import paid_model_ranking
from prefloop.bench.report import METRICS
from prefloop.cli import main
from prefloop.data.readers import load_prompt_items
from prefloop.data.run_dataset import dataset_file
from prefloop.judge.base import Judgement, JudgeRequest

REPO = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[:24]
    path = tmp_path_factory.mktemp("data") / "tiny.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_label_efficiency_writes_every_report_file(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    status = main(
        [
            "bench", "label-efficiency", "--data", str(tiny_data), "--methods", "random,drts",
            "--seeds", "2", "--budget", "12", "--batch-size", "6", "--max-length-tokens", "64",
            "--num-heads", "4", "--epochs-per-round", "2", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    points = _rows(out / "points.csv")
    # 24 prompts, 20% held out -> 20 in the pool; budget 12 at 6 per round -> 2 rounds
    assert len(points) == 2 * 2 * 2
    assert {(p["method"], p["seed"]) for p in points} == {
        (m, s) for m in ("random", "drts") for s in ("0", "1")
    }
    assert {int(p["annotations"]) for p in points} == {6, 12}
    for col in [*METRICS, "acquisition_seconds", "round_seconds", "round_near_tie_share"]:
        assert col in points[0]
    assert all(0.0 <= float(p["downstream_accuracy"]) <= 1.0 for p in points)
    assert all(float(p["round_sigma_mean"]) > 0 for p in points)
    assert all(0.0 < float(p["round_model_diversity"]) <= 1.0 for p in points)
    summary = _rows(out / "summary.csv")
    assert len(summary) == 2 * len(METRICS)
    rnd = next(r for r in summary if r["method"] == "random" and r["metric"] == "heldout_accuracy")
    assert float(rnd["efficiency_ratio"]) == pytest.approx(1.0)
    sig = _rows(out / "significance.csv")
    assert len(sig) == len(METRICS) * 4  # final, auc, half_budget, third_budget
    assert {r["test"] for r in sig} == {"final", "auc", "half_budget", "third_budget"}
    assert {r["method"] for r in sig} == {"drts"}
    # a third of Random's budget can lie before a curve's first point: no value, no test (nan)
    tested = [r for r in sig if r["p_value"] not in ("", "nan")]
    assert {r["test"] for r in tested} >= {"final", "auc", "half_budget"}
    assert all(float(r["p_holm"]) >= float(r["p_value"]) for r in tested)
    overhead = _rows(out / "overhead.csv")
    assert {r["method"] for r in overhead} == {"random", "drts"}
    assert all(float(r["acquisition_seconds_per_round"]) >= 0 for r in overhead)
    assert "| drts |" in (out / "summary.md").read_text()
    for metric in METRICS:
        with Image.open(out / f"curve_{metric}.png") as im:
            im.verify()
    rows = [json.loads(x) for x in dataset_file(out / "runs/drts-s0").read_text().splitlines()]
    assert len(rows) == 12


def test_speed_bench_writes_tables_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "speed"
    status = main(
        [
            "bench", "speed", "--prompts", "50,200", "--responses", "4", "--methods",
            "random,delta_ucb,us_dpo,bgpm_mv,delta_qwen", "--repeats", "1", "--batch-rule-cap",
            "50", "--scoring-texts", "8", "--data", str(REPO / "data/alpacaeval/sample100.jsonl"),
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    acq = _rows(out / "acquisition.csv")
    sizes = {(r["rule"], int(r["prompts"])) for r in acq}
    assert ("random", 200) in sizes and ("delta_ucb", 200) in sizes
    assert ("us_dpo", 50) in sizes and ("us_dpo", 200) not in sizes  # batch rule cap
    assert all(float(r["peak_mib"]) >= 0 for r in acq)
    scoring = _rows(out / "scoring.csv")
    assert {r["component"].split(".")[0] for r in scoring} >= {"head:ensemble", "head:bgpm"}
    assert len(_rows(out / "training.csv")) == 3
    assert "capped at P=50" in (out / "speed.md").read_text()
    with Image.open(out / "acquisition_loglog.png") as im:
        im.verify()


def test_methods() -> None:
    assert "random" in resolve_methods("all") and "bgpm_mv" in resolve_methods("all")
    assert resolve_methods("random, drts") == ["random", "drts"]
    with pytest.raises(ValueError, match="unknown acquisition method"):
        resolve_methods("random,nope")


class AlphabeticalJudge:
    """A judge that prefers the model whose name sorts first, and counts its calls."""

    name = "alphabetical"

    def __init__(self) -> None:
        self.calls = 0

    def judge(self, requests: list[JudgeRequest]) -> list[Judgement]:
        self.calls += len(requests)
        return [
            Judgement(r.pair_id, winner=0 if r.a.model < r.b.model else 1, probability_a=0.5)
            for r in requests
        ]


def test_delta_qwen_ranking_comes_from_the_judge_calls_it_pays_for() -> None:
    """Issue 7 item 1: not from the stored scores of the pool, from labels bought for it."""
    items = load_prompt_items(REPO / "data/alpacaeval/sample100.jsonl")[:60]
    judge = AlphabeticalJudge()
    ranking = paid_model_ranking(items, judge, run_name="r", n_calls=200, seed=3)
    assert judge.calls == 200
    models = sorted({r.model for it in items for r in it.responses})
    assert sorted(ranking) == models
    # the stored scores rank claude-2 / gpt-3.5 on top; the judge this run paid says otherwise
    assert ranking[:3] == models[:3] and ranking[-1] == models[-1]
    again = paid_model_ranking(items, AlphabeticalJudge(), run_name="r", n_calls=200, seed=3)
    assert again == ranking


@pytest.mark.parametrize(
    ("source", "methods"),
    [
        ("data/alpacaeval/sample100.jsonl", "bgpm_mv,delta_qwen"),
        ("data/hh_rlhf/harmless_dev.jsonl", "random,ae_dpo"),
    ],
)
def test_label_efficiency_on_special_methods_and_pair_pools(
    source: str, methods: str, tmp_path: Path
) -> None:
    """Rules that need a BGPM head or a model ranking, and an offline pair pool, end to end."""
    lines = (REPO / source).read_text().splitlines()[:24]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    status = main(
        [
            "bench", "label-efficiency", "--data", str(data), "--methods", methods,
            "--seeds", "1", "--budget", "12", "--batch-size", "6", "--max-length-tokens", "32",
            "--num-heads", "4", "--epochs-per-round", "2", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    points = _rows(out / "points.csv")
    assert {p["method"] for p in points} == set(methods.split(","))
    for p in points:
        assert 0.0 <= float(p["heldout_accuracy"]) <= 1.0
        assert int(p["annotations"]) <= 12 and int(p["pairs"]) <= 12


def test_delta_qwen_is_plotted_against_pairs_it_took(tiny_data: Path, tmp_path: Path) -> None:
    """Issue 7 item 1: the pair budget binds DeltaQwen; its ratio is on the pair axis, its
    judge calls are the ones its ranking cost (a quarter of the budget by default)."""
    out = tmp_path / "report"
    status = main(
        [
            "bench", "label-efficiency", "--data", str(tiny_data), "--methods",
            "random,delta_qwen", "--seeds", "1", "--budget", "12", "--batch-size", "8",
            "--max-length-tokens", "32", "--num-heads", "4", "--epochs-per-round", "1",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    points = _rows(out / "points.csv")
    dq = [p for p in points if p["method"] == "delta_qwen"]
    assert [int(p["pairs"]) for p in dq] == [8, 12]
    assert {int(p["annotations"]) for p in dq} == {3} == {int(p["ranking_calls"]) for p in dq}
    rnd = [p for p in points if p["method"] == "random"]
    assert [int(p["pairs"]) for p in rnd] == [int(p["annotations"]) for p in rnd] == [8, 12]
    axes = {(r["method"], r["axis"]) for r in _rows(out / "summary.csv")}
    assert axes == {("random", "annotations"), ("delta_qwen", "pairs")}
    md = (out / "summary.md").read_text()
    assert "| delta_qwen | 1 | 3 | 12 |" in md and "pairs in the dataset" in md
    with Image.open(out / "curve_heldout_accuracy.png") as im:
        assert im.width > 1.5 * im.height  # two panels: judge calls and pairs


def test_eval_data_is_a_separate_held_out_set(tiny_data: Path, tmp_path: Path) -> None:
    """With --eval-data every prompt of --data goes to the loop; evaluation uses the other file."""
    lines = (REPO / "data/alpacaeval/sample100.jsonl").read_text().splitlines()[40:52]
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    status = main(
        [
            "bench", "label-efficiency", "--data", str(tiny_data), "--eval-data", str(eval_path),
            "--methods", "random", "--seeds", "1", "--budget", "100", "--batch-size", "8",
            "--max-length-tokens", "32", "--num-heads", "4", "--epochs-per-round", "2",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    points = _rows(out / "points.csv")
    # all 24 prompts are in the loop (no held-out split of --data): 3 rounds of 8
    assert [int(p["annotations"]) for p in points] == [8, 16, 24]
    assert all(0.0 <= float(p["heldout_accuracy"]) <= 1.0 for p in points)
