"""``prefloop bench speed``: how fast each part of the loop is, and how it grows with P.

* acquisition: every rule on synthetic (P, N) reward arrays (mean, std, S=8 samples; features
  with D=16 and BGPM preference arrays with 2k=8 for the rules that need them), seconds per call
  (median of repeats), prompts/s and peak memory of one call (``tracemalloc``: numpy reports its
  buffers to it). Batch rules whose cost is superlinear in P (clustering, DPP, global sorts over
  all pairs) are capped at ``batch_rule_cap`` prompts, and any rule that needs more than
  ``time_limit`` seconds at one size is not run at larger sizes; both are recorded.
* reward scoring: MiniLM embedding throughput on real texts, and each head's ``predict``
  throughput on random features, separately (responses/s).
* training: ``train_steps`` steps/s per head.

With ``against_floor`` every rule is also timed against its floor: computing the rule's N x N
pair-score matrix once, the least any rule that looks at every pair must spend (``FLOOR_OF``:
the optimistic gap ``UB_i - LB_j`` for DeltaUCB / DeltaQuantile, the Bradley-Terry interval
width for InfoMax / InfoGain, ``LCB[i, j]`` for MaxMinLCB, the judge-score gap for MaxMin /
UltraFeedback, the mean gap ``mu_i - mu_j`` for every other rule), and the ratio is reported.
``acquisition_only`` skips the scoring and training parts. ``clock="cpu"`` times the
acquisition with the process's CPU time instead of the wall clock: every rule and floor is
single-threaded numpy, so on an idle machine the two agree, and on a shared one the CPU time
is not inflated by the other processes' load.

Pool scope (``pool_speed.py``): one pool round's acquisition step (rule + prompt ranking, with
and without cluster diversity) for ``pool_rules``, in ``pool_scope.csv``.

Writes ``acquisition.csv``, ``scoring.csv``, ``training.csv``, ``speed.md`` and
``acquisition_loglog.png`` (seconds per call against P, log-log, one line per rule).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from scipy.special import expit

from prefloop.acquisition import AcquisitionInput, get_rule, rule_names, select
from prefloop.bench.report import write_csv

SAMPLES = 8
FEATURE_DIM = 16
PREF_DIM = 8
MODELS = [f"model-{i:02d}" for i in range(32)]
FLOOR_TARGET = 3.0
"""A rule should take at most this many times its floor (issue 7)."""
FLOOR_OF = {
    "delta_ucb": "optimistic_gap",
    "delta_quantile": "optimistic_gap",
    "infomax": "interval_width",
    "infogain": "interval_width",
    "maxmin_lcb": "lcb",
    "maxmin": "judge_gap",
    "ultrafeedback": "judge_gap",
}
"""The pair-score matrix each rule is timed against; ``mean_gap`` for the others."""


@dataclass
class SpeedConfig:
    """Sizes and output of one speed bench."""

    prompts: list[int]
    responses: list[int]
    out: Path
    methods: str = "all"
    repeats: int = 3
    batch_rule_cap: int = 10_000
    time_limit: float = 20.0
    scoring_texts: int = 256
    data: Path | None = None
    heads: list[str] = field(default_factory=lambda: ["ensemble", "epinet", "bgpm"])
    against_floor: bool = False
    acquisition_only: bool = False
    clock: str = "wall"
    pool_rules: str = "random,delta_ucb,drts"
    """Rules whose pool-scope round is timed (``pool_speed.py``); "" skips that part."""


def synthetic_input(
    p: int, n: int, rng: np.random.Generator, needs: frozenset[str]
) -> AcquisitionInput:
    """Random reward-model outputs of the right shapes (only the optional arrays a rule needs)."""
    mean = rng.standard_normal((p, n))
    std = rng.uniform(0.05, 1.0, (p, n))
    mask = np.ones((p, n), dtype=bool)
    samples = (
        (mean[..., None] + std[..., None] * rng.standard_normal((p, n, SAMPLES)))
        if ("samples" in needs)
        else None
    )
    features = (
        rng.standard_normal((p, n, FEATURE_DIM)).astype(np.float32)
        if ("features" in needs)
        else None
    )
    pref_mean = pref_var = None
    if "pref" in needs:
        raw = rng.standard_normal((p, n, PREF_DIM))
        pref_mean = raw / np.linalg.norm(raw, axis=-1, keepdims=True)
        pref_var = rng.uniform(0.01, 0.2, (p, n, PREF_DIM))
    judge = rng.uniform(0, 1, (p, n)) if "judge_scores" in needs else None
    models = np.tile(np.array(MODELS[:n], dtype=object), (p, 1)) if "models" in needs else None
    return AcquisitionInput(
        mean=mean,
        std=std,
        mask=mask,
        samples=samples,
        features=features,
        pref_mean=pref_mean,
        pref_var=pref_var,
        judge_scores=judge,
        models=models,
    )


def _rule_setup(name: str) -> tuple[frozenset[str], dict[str, Any]]:
    info = get_rule(name)
    needs = set(info.needs)
    params: dict[str, Any] = {}
    if name in {"maxmin", "ultrafeedback"}:
        needs.add("judge_scores")
    if name == "delta_qwen":
        params["model_ranking"] = list(MODELS)
    if info.kind == "batch":
        needs.add("features")
    return frozenset(needs), params


def pair_score_floor(kind: str, inputs: AcquisitionInput) -> np.ndarray:
    """The (P, N, N) pair-score matrix of floor ``kind``, computed once, as the papers write it.

    Why: the cost a pair-ranking rule cannot avoid (every rule reads every pair of a prompt at
    least once), so ``rule seconds / floor seconds`` says how much the rule spends on top.
    Beta is 1, the rules' default.
    """
    mean, std = inputs.mean, inputs.std
    if kind == "optimistic_gap":
        return (mean + std)[:, :, None] - (mean - std)[:, None, :]
    if kind == "interval_width":
        upper, lower = mean + std, mean - std
        return np.asarray(
            expit(upper[:, :, None] - lower[:, None, :])
            - expit(lower[:, :, None] - upper[:, None, :])
        )
    if kind == "lcb":
        return (mean[:, :, None] - mean[:, None, :]) - (std[:, :, None] + std[:, None, :])
    if kind == "judge_gap" and inputs.judge_scores is not None:
        return inputs.judge_scores[:, :, None] - inputs.judge_scores[:, None, :]
    return mean[:, :, None] - mean[:, None, :]


def floor_kind(name: str) -> str:
    """The floor a rule is measured against (``FLOOR_OF``, else the mean gap)."""
    return FLOOR_OF.get(name, "mean_gap")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""Clocks the acquisition timings can use (``SpeedConfig.clock``)."""


def time_rule(
    name: str,
    p: int,
    n: int,
    repeats: int,
    seed: int = 0,
    against_floor: bool = False,
    clock: str = "wall",
) -> dict[str, Any]:
    """Median seconds of ``repeats`` calls and the peak traced memory of one more call.

    With ``against_floor`` each call is followed by one computation of the rule's floor
    (interleaved, so both see the same machine load) and the medians' ratio is reported.
    """
    needs, params = _rule_setup(name)
    now = CLOCKS[clock]
    rng = np.random.default_rng(seed)
    inputs = synthetic_input(p, n, rng, needs)
    times: list[float] = []
    floor_times: list[float] = []
    for r in range(repeats):
        t = now()
        select(name, inputs, np.random.default_rng(seed + r), **params)
        times.append(now() - t)
        if against_floor:
            t = now()
            pair_score_floor(floor_kind(name), inputs)
            floor_times.append(now() - t)
    tracemalloc.start()
    select(name, inputs, np.random.default_rng(seed), **params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sec = statistics.median(times)
    row: dict[str, Any] = {
        "rule": name,
        "kind": get_rule(name).kind,
        "prompts": p,
        "responses": n,
        "seconds": sec,
        "prompts_per_second": p / sec if sec > 0 else float("inf"),
        "peak_mib": peak / 2**20,
        "under_1s": sec < 1.0,
        "clock": clock,
    }
    if against_floor:
        floor_sec = statistics.median(floor_times)
        ratio = sec / floor_sec if floor_sec > 0 else float("inf")
        row |= {
            "floor": floor_kind(name),
            "floor_seconds": floor_sec,
            "floor_ratio": ratio,
            "within_3x_floor": ratio <= FLOOR_TARGET,
        }
    return row


def bench_acquisition(cfg: SpeedConfig, console: Console) -> tuple[list[dict[str, Any]], list[str]]:
    """Every rule at every (P, N), with the caps applied; returns rows and notes on what was cut."""
    names = rule_names() if cfg.methods == "all" else [m.strip() for m in cfg.methods.split(",")]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in names:
        kind = get_rule(name).kind
        for n in cfg.responses:
            for p in sorted(cfg.prompts):
                if kind == "batch" and p > cfg.batch_rule_cap:
                    notes.append(f"{name}: batch rule, capped at P={cfg.batch_rule_cap} (N={n})")
                    break
                row = time_rule(
                    name, p, n, cfg.repeats, against_floor=cfg.against_floor, clock=cfg.clock
                )
                rows.append(row)
                vs_floor = f", {row['floor_ratio']:.2f}x floor" if cfg.against_floor else ""
                console.print(
                    f"{name:16s} P={p:>7} N={n:>2}: {row['seconds']:.4f}s, "
                    f"{row['peak_mib']:.1f} MiB{vs_floor}"
                )
                if row["seconds"] > cfg.time_limit:
                    notes.append(f"{name}: {row['seconds']:.1f}s at P={p}, N={n}; larger P skipped")
                    break
    return rows, list(dict.fromkeys(notes))


def _texts(cfg: SpeedConfig) -> tuple[list[str], list[str]]:
    from prefloop.data.readers import load_prompt_items

    path = cfg.data or Path("data/alpacaeval/sample100.jsonl")
    prompts, responses = [], []
    for it in load_prompt_items(path):
        for r in it.responses:
            prompts.append(it.prompt_text())
            responses.append(r.text)
            if len(prompts) >= cfg.scoring_texts:
                return prompts, responses
    return prompts, responses


def bench_scoring(cfg: SpeedConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Embedder and head-predict throughput (responses/s) and training steps/s per head."""
    import torch

    from prefloop.reward.embedders import make_embedder
    from prefloop.reward.heads import make_head
    from prefloop.reward.threads import single_threaded

    scoring: list[dict[str, Any]] = []
    prompts, responses = _texts(cfg)
    emb = make_embedder("minilm", max_length_tokens=256)
    emb.embed(prompts[:4], responses[:4])  # warm-up
    t = time.perf_counter()
    emb.embed(prompts, responses)
    sec = time.perf_counter() - t
    scoring.append(
        {
            "component": "embedder:minilm(max256)",
            "responses": len(prompts),
            "seconds": sec,
            "responses_per_second": len(prompts) / sec,
            "threads": torch.get_num_threads(),
        }
    )
    rng = np.random.default_rng(0)
    m = 20_000
    feats = rng.standard_normal((m, emb.dim)).astype(np.float32)
    training: list[dict[str, Any]] = []
    for kind in cfg.heads:
        head = make_head(kind, input_dim=emb.dim, seed=0)  # type: ignore[arg-type]
        with single_threaded():
            head.predict(feats[:64])
            t = time.perf_counter()
            head.predict(feats)
            sec = time.perf_counter() - t
            scoring.append(
                {
                    "component": f"head:{kind}.predict",
                    "responses": m,
                    "seconds": sec,
                    "responses_per_second": m / sec,
                    "threads": 1,
                }
            )
            chosen, rejected = feats[:512], feats[512:1024]
            steps = 50
            t = time.perf_counter()
            head.train_steps(
                chosen,
                rejected,
                max_steps=steps,
                batch_size=64,
                anchor_weight=1.0,
                generator_seed=0,
            )
            sec = time.perf_counter() - t
        training.append(
            {
                "head": kind,
                "steps": steps,
                "batch_size": 64,
                "seconds": sec,
                "steps_per_second": steps / sec,
            }
        )
    return scoring, training


def plot_loglog(rows: list[dict[str, Any]], path: Path) -> Path:
    """Seconds per call against P on log-log axes, one panel per N, one line per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({int(r["responses"]) for r in rows})
    fig, axes = plt.subplots(1, len(ns), figsize=(6.5 * len(ns), 5), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for rule in sorted({r["rule"] for r in rows}):
            pts = sorted(
                (int(r["prompts"]), float(r["seconds"]))
                for r in rows
                if r["rule"] == rule and int(r["responses"]) == n
            )
            if pts:
                ax.plot(
                    [p for p, _ in pts], [s for _, s in pts], marker="o", markersize=3, label=rule
                )
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("prompts P")
        ax.set_ylabel("seconds per selection")
        ax.set_title(f"acquisition time, N={n} responses")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def speed_markdown(
    acq: list[dict[str, Any]],
    scoring: list[dict[str, Any]],
    training: list[dict[str, Any]],
    notes: list[str],
) -> str:
    """The three tables as markdown (floor columns when the rows carry them)."""
    with_floor = any("floor_ratio" in r for r in acq)
    clock = "CPU" if any(r.get("clock") == "cpu" for r in acq) else "wall-clock"
    lines = ["# Speed bench", "", f"## Acquisition (median {clock} seconds per call; peak MiB)"]
    lines.append("")
    head = "| rule | kind | P | N | seconds | prompts/s | peak MiB | < 1 s |"
    rule_line = "|---|---|---|---|---|---|---|---|"
    if with_floor:
        head += f" floor | floor s | x floor | <= {FLOOR_TARGET:g}x |"
        rule_line += "---|---|---|---|"
    lines += [head, rule_line]
    for r in acq:
        line = (
            f"| {r['rule']} | {r['kind']} | {r['prompts']} | {r['responses']} | "
            f"{r['seconds']:.4f} | {r['prompts_per_second']:.0f} | {r['peak_mib']:.1f} | "
            f"{'yes' if r['under_1s'] else 'no'} |"
        )
        if with_floor:
            line += (
                f" {r['floor']} | {r['floor_seconds']:.4f} | {r['floor_ratio']:.2f} | "
                f"{'yes' if r['within_3x_floor'] else 'no'} |"
            )
        lines.append(line)
    lines += ["", *[f"- {n}" for n in notes], "", "## Reward scoring", ""]
    if not scoring and not training:
        lines += ["Skipped (`--acquisition-only`).", ""]
        return "\n".join(lines)
    lines += [
        "| component | responses | seconds | responses/s | threads |",
        "|---|---|---|---|---|",
    ]
    for r in scoring:
        lines.append(
            f"| {r['component']} | {r['responses']} | {r['seconds']:.3f} | "
            f"{r['responses_per_second']:.0f} | {r['threads']} |"
        )
    lines += ["", "## Training (train_steps, batch 64, one thread)", ""]
    lines += ["| head | steps | seconds | steps/s |", "|---|---|---|---|"]
    for r in training:
        lines.append(
            f"| {r['head']} | {r['steps']} | {r['seconds']:.3f} | {r['steps_per_second']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run_speed(cfg: SpeedConfig, console: Console | None = None) -> Path:
    """Run the three parts and write the report; returns the markdown path."""
    import resource

    console = console or Console(stderr=True)
    cfg.out.mkdir(parents=True, exist_ok=True)
    from prefloop.bench.pool_speed import bench_pool_scope, pool_markdown

    acq, notes = bench_acquisition(cfg, console)
    pool_rules = [r.strip() for r in cfg.pool_rules.split(",") if r.strip()]
    pool = bench_pool_scope(pool_rules, cfg.prompts, cfg.responses, cfg.repeats, cfg.clock, console)
    scoring, training = ([], []) if cfg.acquisition_only else bench_scoring(cfg)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    notes.append(f"process peak RSS (ru_maxrss): {rss_mib:.0f} MiB")
    write_csv(cfg.out / "acquisition.csv", acq)
    if not cfg.acquisition_only:
        write_csv(cfg.out / "scoring.csv", scoring)
        write_csv(cfg.out / "training.csv", training)
    plot_loglog(acq, cfg.out / "acquisition_loglog.png")
    md = cfg.out / "speed.md"
    if pool:
        write_csv(cfg.out / "pool_scope.csv", pool)
    text = speed_markdown(acq, scoring, training, notes) + "\n".join(pool_markdown(pool))
    md.write_text(text + ("\n" if pool else ""), encoding="utf-8")
    return md
