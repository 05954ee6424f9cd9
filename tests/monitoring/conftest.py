"""Fixture of the monitoring tests: one live scrape per session (see monitoring_helpers)."""

from __future__ import annotations

import asyncio

import pytest
from monitoring_helpers import LiveScrape, live_scrape


@pytest.fixture(scope="session", name="live_scrape")
def live_scrape_fixture(tmp_path_factory: pytest.TempPathFactory) -> LiveScrape:
    """A real role server and a driver endpoint, after a known set of calls."""
    return asyncio.run(live_scrape(tmp_path_factory.mktemp("monitoring")))
