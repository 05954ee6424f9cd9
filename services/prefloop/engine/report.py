"""What a run leaves behind for people: metrics table, learning-curve plot, short summary, and
the provenance written into the dataset card."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from prefloop.data.card import DatasetProvenance
from prefloop.engine.round_engine import STEPS, RunResult
from prefloop.spec import ActiveRun


def dataset_provenance(run: ActiveRun) -> DatasetProvenance:
    """The run's origin for its dataset card: name, method, seed, judge and budget settings.

    Why: a dataset file that travels alone must say how it was made.
    """
    spec = run.spec
    return DatasetProvenance(
        run=run.metadata.name,
        method=spec.acquisition.method,
        judge=spec.judge.model_dump(mode="json", by_alias=True),
        seed=spec.seed,
        budget=spec.budget.model_dump(mode="json", by_alias=True),
    )


def write_metrics(metrics: list[dict[str, Any]], run_dir: Path) -> tuple[Path, Path]:
    """Per-round metrics as CSV (for spreadsheets) and JSONL (for code)."""
    csv_path, jsonl_path = run_dir / "metrics.csv", run_dir / "metrics.jsonl"
    keys: list[str] = []
    for row in metrics:
        keys.extend(k for k in row if k not in keys)
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in metrics:
            w.writerow(row)
    with jsonl_path.open("w") as f:
        for row in metrics:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    return csv_path, jsonl_path


def plot_learning_curve(
    metrics: list[dict[str, Any]],
    path: Path,
    title: str,
    shadow: list[dict[str, Any]] | None = None,
    method: str = "",
) -> Path:
    """Held-out accuracy and selected-pair score gap against annotations used; with ``shadow``
    (``evaluation.shadowRandom``) Random's accuracy on the same prompts beside the run's."""
    x = [m["annotations_used"] for m in metrics]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    acc = [m.get("heldout_accuracy", math.nan) for m in metrics]
    axes[0].plot(x, acc, marker="o", label=method or None)
    if shadow:
        axes[0].plot(
            [m["annotations_used"] for m in shadow],
            [m.get("heldout_accuracy", math.nan) for m in shadow],
            marker="s",
            ls="--",
            color="grey",
            label="random (shadow run)",
        )
    axes[0].axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    axes[0].set(
        xlabel="annotations used", ylabel="held-out pairwise accuracy", title="reward model"
    )
    axes[0].legend(loc="lower right")
    gap = [m.get("mean_score_gap", math.nan) for m in metrics]
    chosen = [m.get("mean_chosen_score", math.nan) for m in metrics]
    axes[1].plot(x, gap, marker="o", label="chosen - rejected")
    axes[1].plot(x, chosen, marker="s", label="chosen")
    axes[1].set(xlabel="annotations used", ylabel="judge score", title="selected pairs (per round)")
    axes[1].legend(loc="best")
    bottom = [0.0] * len(metrics)
    rounds = [m["round"] for m in metrics]
    for step in STEPS:
        vals = [m.get(f"{step}_seconds", 0.0) for m in metrics]
        axes[2].bar(rounds, vals, bottom=bottom, label=step)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    axes[2].set(xlabel="round", ylabel="seconds", title="time per round")
    axes[2].legend(loc="best", fontsize=8)
    plot_costs(axes[3], metrics, x)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_costs(ax: Any, metrics: list[dict[str, Any]], x: list[Any]) -> None:
    """Cumulative judge and generation cost against annotations used, and the judge's calls.

    Why on the learning curve: what a point of accuracy cost is the question a live run asks.
    """
    for name, label in (("judge_cost", "judge"), ("generation_cost", "generation")):
        total, ys = 0.0, []
        for m in metrics:
            total += float(m.get(name, 0.0) or 0.0)
            ys.append(total)
        ax.plot(x, ys, marker="o", label=f"{label} cost")
    calls = ax.twinx()
    total_calls, ys_calls = 0, []
    for m in metrics:
        total_calls += int(m.get("judge_calls", 0) or 0)
        ys_calls.append(total_calls)
    calls.plot(x, ys_calls, color="grey", ls=":", label="judge calls")
    calls.set_ylabel("judge calls (cumulative)")
    ax.set(xlabel="annotations used", ylabel="cost (endpoint prices)", title="cost (cumulative)")
    ax.legend(loc="upper left", fontsize=8)


def cost_lines(totals: dict[str, float], failures_pending: int) -> list[str]:
    """The summary's cost section: calls, tokens, seconds, cache hits and money, per part.

    Why: a run on paid endpoints must say what it spent and what it saved by caching.
    """
    t = totals
    judge_calls = int(t.get("judge_calls", 0))
    generation_calls = int(t.get("generation_calls", 0))
    total = float(t.get("judge_cost", 0.0)) + float(t.get("generation_cost", 0.0))
    return [
        f"- judge: {judge_calls} calls ({int(t.get('judge_failed_calls', 0))} failed), "
        f"{int(t.get('judge_prompt_tokens', 0))} tokens in, "
        f"{int(t.get('judge_completion_tokens', 0))} out, "
        f"{float(t.get('judge_request_seconds', 0.0)):.1f} s, "
        f"{int(t.get('judge_cache_hits', 0))} cache hits, cost {float(t.get('judge_cost', 0)):.4f}",
        f"- generation: {generation_calls} calls, "
        f"{int(t.get('generation_prompt_tokens', 0))} tokens in, "
        f"{int(t.get('generation_completion_tokens', 0))} out, "
        f"cost {float(t.get('generation_cost', 0.0)):.4f}",
        f"- total cost: {total:.4f} (in the currency of the endpoints' prices per million tokens)",
        f"- pairs the judge failed on: {failures_pending} (not in the data set; asked again on "
        "`prefloop run --resume`)",
    ]


def summarize(
    run: ActiveRun,
    result: RunResult,
    files: dict[str, str],
    warnings: Sequence[str] = (),
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run in a few numbers (summary.json) and a short Markdown page (summary.md).

    ``warnings`` (e.g. a budget the run did not reach) head the page and go in the JSON;
    ``shadow`` (``engine/shadow.py``) compares the run with Random on the same prompts.
    """
    m = result.state.metrics
    last = m[-1] if m else {}
    step_totals = {s: sum(r.get(f"{s}_seconds", 0.0) for r in m) for s in STEPS}
    total = sum(step_totals.values()) or 1.0
    summary = {
        "run": run.metadata.name,
        "method": run.spec.acquisition.method,
        "source_model_strengths": run.spec.reward_model.source_models.enabled,
        "seed": run.spec.seed,
        "rounds": result.state.round,
        "annotations_used": result.state.annotations_used,
        "pairs_in_dataset": len(result.rows),
        "stop_reason": result.state.stop_reason,
        "final_heldout_accuracy": last.get("heldout_accuracy"),
        "final_heldout_spearman": last.get("heldout_spearman"),
        "mean_score_gap": _mean([r.get("mean_score_gap") for r in m]),
        "mean_chosen_score": _mean([r.get("mean_chosen_score") for r in m]),
        "seconds_per_round": total / max(1, len(m)),
        "step_seconds": step_totals,
        "costs": dict(result.state.usage_totals),
        "judge_failures": len(result.state.judge_failures),
        "files": files,
        "warnings": list(warnings),
    }
    if shadow is not None:
        summary["shadow_random"] = shadow
    run_dir = result.run_dir
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    lines = [
        f"# prefloop run `{run.metadata.name}`",
        "",
        *(f"> **Warning:** {w}\n" for w in warnings),
        f"- method: **{summary['method']}**"
        + (" with source-model strengths" if summary["source_model_strengths"] else "")
        + f", seed {summary['seed']}, "
        f"stopped after {summary['rounds']} rounds ({summary['stop_reason']})",
        f"- annotations used: {summary['annotations_used']}; pairs in the data set: "
        f"{summary['pairs_in_dataset']}",
        "- held-out pairwise accuracy of the reward model: "
        f"{_fmt(summary['final_heldout_accuracy'])} "
        f"(Spearman {_fmt(summary['final_heldout_spearman'])})",
        f"- mean judge-score gap of the selected pairs: {_fmt(summary['mean_score_gap'])}; "
        f"mean chosen score: {_fmt(summary['mean_chosen_score'])}",
        *_shadow_lines(shadow),
        f"- time per round: {summary['seconds_per_round']:.2f} s",
        *cost_lines(result.state.usage_totals, len(result.state.judge_failures)),
        "",
        "| step | seconds | share |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {v:.2f} | {100 * v / total:.0f}% |" for s, v in step_totals.items()]
    lines += ["", "Files: " + ", ".join(f"`{v}`" for v in files.values()), ""]
    (run_dir / "summary.md").write_text("\n".join(lines))
    return summary


def _shadow_lines(shadow: dict[str, Any] | None) -> list[str]:
    """The summary's line about the shadow Random run, if there was one."""
    if shadow is None:
        return []
    reach = shadow["annotations_to_reach_random"]
    reached = (
        f"this run reached that accuracy with {reach} annotations"
        if reach is not None
        else "this run did not reach that accuracy"
    )
    return [
        f"- Random on the same prompts (shadow run, `{shadow['dir']}/`): held-out accuracy "
        f"{_fmt(shadow['final_heldout_accuracy'])} after {shadow['annotations_used']} "
        f"annotations; {reached}"
    ]


def _mean(xs: list[Any]) -> float | None:
    vals = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(vals) / len(vals) if vals else None


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
