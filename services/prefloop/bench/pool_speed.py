"""``prefloop bench speed``: the cost of a pool-scope round's acquisition step.

With ``acquisition.scope: pool`` a round runs the rule on every candidate prompt and then ranks
the candidates (``engine.selection.choose_pool_prompts``: per-prompt values, the top
``batchSize``, optionally one per k-means cluster). This part times that whole step, rule
included, on synthetic (P, N) arrays with D=384 features (MiniLM's width, what the diversity
k-means clusters), so the claim "10,000 candidate prompts x 16 responses in well under a second"
is measured, not assumed. Rows go to ``pool_scope.csv`` and a table of ``speed.md``.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from rich.console import Console

from prefloop.acquisition import get_rule, select
from prefloop.bench.speed import CLOCKS, _rule_setup, synthetic_input
from prefloop.engine.budget import Remaining
from prefloop.engine.selection import RoundRule, choose_pool_prompts

POOL_FEATURE_DIM = 384
POOL_BATCH = 64
"""Prompts a timed round labels (the bench's and quickstart-sized ``batchSize``)."""


def time_pool_round(
    name: str, p: int, n: int, diversity: str, repeats: int, clock: str = "wall", seed: int = 0
) -> dict[str, Any]:
    """Median seconds of a pool round's acquisition step (rule + ranking) over ``repeats``."""
    needs, params = _rule_setup(name)
    rng = np.random.default_rng(seed)
    inputs = synthetic_input(p, n, rng, needs | {"features"})
    inputs = type(inputs)(
        **{
            **inputs.__dict__,
            "features": rng.normal(size=(p, n, POOL_FEATURE_DIM)).astype(np.float32),
        }
    )
    rule = RoundRule(
        info=get_rule(name),
        params=params,
        pairs_per_prompt=1,
        acquisition_seed=seed,
        truncation_seed=seed,
        scope="pool",
        prompts_per_round=POOL_BATCH,
        diversity=diversity,
        pool_seed=seed + 1,
    )
    now = CLOCKS[clock]
    left = Remaining(10**12, 10**12)
    total, ranking = [], []
    for r in range(repeats):
        t0 = now()
        sel = select(name, inputs, np.random.default_rng(seed + r), **params)
        t1 = now()
        chosen = choose_pool_prompts(rule, inputs, sel, left)
        t2 = now()
        total.append(t2 - t0)
        ranking.append(t2 - t1)
    sec = statistics.median(total)
    return {
        "rule": name,
        "diversity": diversity,
        "prompts": p,
        "responses": n,
        "batch": POOL_BATCH,
        "seconds": sec,
        "ranking_seconds": statistics.median(ranking),
        "prompts_chosen": int(np.unique(chosen.prompt_index).size),
        "under_1s": sec < 1.0,
        "clock": clock,
    }


def bench_pool_scope(
    rules: list[str],
    prompts: list[int],
    responses: list[int],
    repeats: int,
    clock: str,
    console: Console,
) -> list[dict[str, Any]]:
    """Every listed per-prompt rule at every (P, N), without and with cluster diversity."""
    rows = []
    for name in rules:
        for n in responses:
            for p in sorted(prompts):
                for diversity in ("none", "clusters"):
                    row = time_pool_round(name, p, n, diversity, repeats, clock)
                    rows.append(row)
                    console.print(
                        f"pool {name:12s} {diversity:8s} P={p:>7} N={n:>2}: "
                        f"{row['seconds']:.4f}s (ranking {row['ranking_seconds']:.4f}s)"
                    )
    return rows


def pool_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The pool-scope table of ``speed.md``."""
    if not rows:
        return []
    lines = [
        "",
        f"## Pool scope: one round's acquisition step (rule + ranking, batch {POOL_BATCH}, "
        f"D={POOL_FEATURE_DIM})",
        "",
        "| rule | diversity | P | N | seconds | of which ranking | < 1 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rule']} | {r['diversity']} | {r['prompts']} | {r['responses']} | "
            f"{r['seconds']:.4f} | {r['ranking_seconds']:.4f} | "
            f"{'yes' if r['under_1s'] else 'no'} |"
        )
    return lines
