"""``prefloop bench live``: a short run's output shape (figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefloop.bench.live import SHAPES, LiveBenchConfig, run_live_bench


def test_bench_live_command_reports_both_shapes(tmp_path: Path) -> None:
    out = tmp_path / "live"
    cmd = [sys.executable, "-m", "prefloop.cli", "bench", "live", "--concurrency", "4"]
    cmd += ["--latency-ms", "5", "--requests", "24", "--warmup", "4", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| shape | concurrency | latency | requests | failures |")
    assert [row.split("|")[1].strip() for row in table[1:]] == list(SHAPES)
    rows = json.loads((out / "live.json").read_text())
    assert [r["shape"] for r in rows] == list(SHAPES)
    for r in rows:
        assert r["requests"] == 24 and r["failures"] == 0 and r["concurrency"] == 4
        assert r["ideal_requests_per_second"] == pytest.approx(4 / 0.005)
        assert r["bar_requests_per_second"] == pytest.approx(0.9 * 4 / 0.005)
        assert r["requests_per_second"] > 0 and r["seconds"] > 0
        assert r["p99_ms"] >= r["p50_ms"] >= 5.0  # no reply before the server's latency
        assert r["cpu_ms_per_request"] > 0
        assert r["meets_bar"] == (r["requests_per_second"] >= r["bar_requests_per_second"])
    assert (out / "live.md").read_text().startswith("# prefloop bench live")
    assert "report: " in done.stderr


def test_bench_live_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="concurrency and requests must be >= 1"):
        run_live_bench(LiveBenchConfig(concurrency=0))
    done = subprocess.run(
        [sys.executable, "-m", "prefloop.cli", "bench", "live", "--requests", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "prefloop bench live:" in done.stderr
