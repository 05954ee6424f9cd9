"""Fixtures of the operator tests: one emulator and one ``prefloop operator`` subprocess per
test module (a module's tests use distinct run names), and a real Tansu broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster import Cluster, emulator_in_thread, write_kubeconfig

from prefloop.bus.tansu import tansu_broker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The emulator in a background thread, with a kubeconfig for subprocesses."""
    base = tmp_path_factory.mktemp("cluster")
    with emulator_in_thread() as (emulator, url):
        yield Cluster(emulator, url, write_kubeconfig(base / "kubeconfig", url))


@pytest.fixture(scope="module")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HOST:PORT of a Tansu broker (in-memory storage) for the module."""
    with tansu_broker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log") as bootstrap:
        yield bootstrap
