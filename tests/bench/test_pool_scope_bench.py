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
    parse_method_overrides,
    parse_method_params,
    split_label,
    uses_source_models,
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


def test_src_labels_switch_on_source_model_strengths_in_the_run_they_build(
    tmp_path: Path,
) -> None:
    from prefloop.bench.label_efficiency import LabelEfficiencyConfig, build_run, resolve_methods

    assert split_label("drts+src@pool") == ("drts", "pool")
    assert split_label("delta_ucb+src") == ("delta_ucb", "batch")
    assert uses_source_models("drts+src@pool") and not uses_source_models("drts@pool")
    assert with_scope(["random", "drts+src"], "both") == ["random", "drts+src", "drts+src@pool"]
    assert resolve_methods("random,delta_ucb+src") == ["random", "delta_ucb+src"]
    cfg = LabelEfficiencyConfig(
        data=REPO / "data" / "alpacaeval" / "sample100.jsonl", out=tmp_path, methods=["random"]
    )
    on = build_run(cfg, "drts+src@pool", seed=1)
    off = build_run(cfg, "drts", seed=1)
    assert on.spec.reward_model.source_models.enabled
    assert not off.spec.reward_model.source_models.enabled
    assert on.spec.acquisition.method == "drts" and on.spec.acquisition.scope == "pool"
    assert on.metadata.name == "bench-drts-src-pool-s1"


def test_tagged_variants_get_their_own_manifest_fields(tmp_path: Path) -> None:
    from prefloop.bench.label_efficiency import (
        BenchConfigError,
        LabelEfficiencyConfig,
        build_run,
        resolve_methods,
    )

    assert split_label("delta_ucb+src@pool#w4") == ("delta_ucb", "pool")
    assert resolve_methods("random,delta_ucb+src#w4") == ["random", "delta_ucb+src#w4"]
    sets = parse_method_overrides(
        "delta_ucb+src#w4:rewardModel.sourceModels.weight=4,"
        "delta_ucb+src#w4:rewardModel.sourceModels.priorPrecision=0.5"
    )
    data = REPO / "data" / "alpacaeval" / "sample100.jsonl"
    cfg = LabelEfficiencyConfig(data=data, out=tmp_path, methods=["random"], method_overrides=sets)
    run = build_run(cfg, "delta_ucb+src#w4", seed=2)
    src = run.spec.reward_model.source_models
    assert (src.enabled, src.weight, src.prior_precision) == (True, 4.0, 0.5)
    assert run.metadata.name == "bench-delta-ucb-src-w4-s2"
    plain = build_run(cfg, "delta_ucb+src", seed=2).spec.reward_model.source_models
    assert plain.weight == 1.0
    bad = LabelEfficiencyConfig(
        data=data, out=tmp_path, methods=["random"],
        method_overrides=parse_method_overrides("drts:rewardModel.sourceModels.weight=-1"),
    )  # fmt: skip
    with pytest.raises(BenchConfigError, match=r"--set drts:rewardModel\.sourceModels\.weight=-1"):
        build_run(bad, "drts", seed=0)
    with pytest.raises(ScopeOptionError, match="METHOD:PATH=VALUE"):
        parse_method_overrides("weight=4")


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
