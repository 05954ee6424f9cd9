"""``prefloop export``: a real embedded run's dataset rebuilt from its annotations topic alone."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
from _bus_testing import IDLE_SECONDS
from datasets import load_dataset
from rich.console import Console

from prefloop.bus.base import Bus
from prefloop.bus.export import add_export_parser, rebuild_dataset, run_export
from prefloop.bus.kafka_bus import KafkaBus
from prefloop.bus.publisher import RunPublisher
from prefloop.bus.throughput import measure_throughput
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.engine.runner import execute
from prefloop.spec import load_activerun


@pytest.fixture(scope="module")
def embedded_run(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quickstart shrunk to 16 prompts in rounds of 4, run embedded once for the module."""
    out = tmp_path_factory.mktemp("embedded") / "run"
    run = load_activerun(
        repo_root / "examples" / "quickstart.yaml",
        [
            "spec.prompts.limit=16",
            "spec.evaluation.shadowRandom=false",
            "spec.batchSize=4",
            "spec.rewardModel.embedder.maxLengthTokens=64",
            "spec.rewardModel.head.numHeads=4",
            f"spec.rewardModel.embedder.cacheDir={out.parent / 'features'}",
        ],
    )
    execute(
        run,
        manifest_dir=repo_root / "examples",
        output=str(out),
        console=Console(file=open(out.parent / "console.txt", "w")),  # noqa: SIM115
    )
    yield out


def _publish_by_round(bus: Bus, run: str, rows: list[dict[str, Any]]) -> None:
    publisher = RunPublisher(bus, run)
    for round_, group in groupby(rows, key=lambda r: r["round"]):
        publisher.annotations(round_, list(group))


@pytest.mark.model
def test_export_rebuilds_exactly_the_embedded_runs_dataset(
    bus: Bus, run_name: str, embedded_run: Path
) -> None:
    rows = read_dataset(dataset_file(embedded_run))
    assert len(rows) >= 8 and len({r["round"] for r in rows}) >= 3
    _publish_by_round(bus, run_name, rows)
    _publish_by_round(bus, run_name, rows[: len(rows) // 2])  # an at-least-once re-send
    assert rebuild_dataset(bus, run_name, timeout_seconds=IDLE_SECONDS) == rows


@pytest.mark.model
def test_export_cli_writes_the_dataset_files_from_kafka(
    kafka_bootstrap: str, run_name: str, embedded_run: Path, tmp_path: Path
) -> None:
    rows = read_dataset(dataset_file(embedded_run))
    bus = KafkaBus(kafka_bootstrap, client_id="engine")
    try:
        _publish_by_round(bus, run_name, rows)
    finally:
        bus.close()
    parser = argparse.ArgumentParser(prog="prefloop")
    add_export_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "export"
    args = parser.parse_args(
        ["export", "--from-kafka", kafka_bootstrap, "--run", run_name, "--out", str(out),
         "--formats", "jsonl,parquet", "--idle-seconds", str(IDLE_SECONDS)]
    )  # fmt: skip
    assert run_export(args) == 0
    assert read_dataset(dataset_file(out)) == rows
    parquet = read_dataset(dataset_file(out, "parquet"))
    assert parquet == read_dataset(dataset_file(embedded_run, "parquet"))
    card = (out / "README.md").read_text()
    assert "source: prefloop export --from-kafka" in card and f"run: {run_name}" in card
    assert load_dataset(str(out), cache_dir=str(tmp_path / "hf"))["train"].to_list() == parquet


def test_export_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="prefloop")
    add_export_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--from-kafka", "h:1", "--run", "r", "--out", "o",
                           "--formats", "jsonl,csv"])  # fmt: skip
    assert "csv is not one of jsonl, parquet" in capsys.readouterr().err
    args = parser.parse_args(["export", "--from-kafka", "nohost", "--run", "r", "--out", "o"])
    assert run_export(args) == 2
    assert "--from-kafka: bootstrap_servers must be HOST:PORT" in capsys.readouterr().err


def test_throughput_measurement_counts_records_and_messages(kafka_bootstrap: str) -> None:
    batched = measure_throughput(
        kafka_bootstrap, n_records=2000, n_keys=20, max_records_per_message=50, chunk_records=1000
    )
    single = measure_throughput(
        kafka_bootstrap, n_records=300, n_keys=20, max_records_per_message=1, chunk_records=1000
    )
    assert (batched.records, batched.messages) == (2000, 40)
    assert (single.records, single.messages) == (300, 300)
    assert batched.produce_records_per_s > 0 and single.consume_messages_per_s > 0
