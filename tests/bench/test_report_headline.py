"""The label-efficiency report leads with the downstream proxy and a CI on labels-to-reach."""

from __future__ import annotations

from typing import Any

import numpy as np

from prefloop.bench.report import METRICS, significance, summarize, summary_markdown


def _points(seeds: int = 8) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    pts = []
    for seed in range(seeds):
        for method, slope in (("random", 0.2), ("fast", 0.4)):
            for r in range(1, 9):
                labels = 16 * r
                value = min(0.5 + slope * labels / 128, 0.9) + rng.normal(0, 0.01)
                pts.append(
                    {
                        "method": method, "seed": seed, "round": r,
                        "annotations": labels, "pairs": labels,
                        **{m: value for m in METRICS},
                    }
                )  # fmt: skip
    return pts


def test_summary_has_a_ratio_ci_and_the_markdown_leads_with_the_downstream_headline() -> None:
    pts = _points()
    summary = summarize(pts)
    fast = next(
        r for r in summary if r["method"] == "fast" and r["metric"] == "downstream_accuracy"
    )
    assert fast["efficiency_ratio"] == np.float64(fast["efficiency_ratio"])
    assert 0.4 < fast["efficiency_ratio"] < 0.6
    assert fast["ratio_ci_low"] <= fast["efficiency_ratio"] <= fast["ratio_ci_high"] < 0.7
    rnd = next(
        r for r in summary if r["method"] == "random" and r["metric"] == "downstream_accuracy"
    )
    assert rnd["ratio_ci_low"] < 1.0 < rnd["ratio_ci_high"] or rnd["ratio_ci_high"] == 1.0
    md = summary_markdown(summary, significance(pts), ["note"])
    head, _, rest = md.partition("## Headline")
    assert "## " not in head  # the headline is the first section
    first_section = rest.split("\n## ")[0]
    assert "| fast | 8 | 128 |" in first_section and "| random | 8 | 128 |" in first_section
    assert "[0." in first_section  # a CI is printed


def test_third_budget_test_separates_a_3x_method_from_a_2x_one() -> None:
    """The issue-12 target: the value at 1/3 of Random's labels beats Random's final value."""
    rng = np.random.default_rng(1)
    pts = []
    for seed in range(8):
        for method, reach, lead in (("random", 128, 0.0), ("twice", 64, 0.0), ("thrice", 32, 0.02)):
            for r in range(1, 9):
                labels = 16 * r
                value = 0.5 + 0.3 * min(labels / reach, 1.0) + lead
                pts.append(
                    {
                        "method": method, "seed": seed, "round": r,
                        "annotations": labels, "pairs": labels,
                        **{m: value + rng.normal(0, 0.002) for m in METRICS},
                    }
                )  # fmt: skip
    sig = {
        (r["method"], r["test"]): r
        for r in significance(pts)
        if r["metric"] == "downstream_accuracy"
    }
    assert sig[("thrice", "third_budget")]["significant_0.05"]
    assert not sig[("twice", "third_budget")]["significant_0.05"]
    assert sig[("twice", "half_budget")]["alternative"] == "greater"
