"""The label-efficiency report: points, learning curves, summary, significance and overhead.

Files written to the report directory:

* ``points.csv``: every (method, seed, round) point with its judge calls (``annotations``),
  pairs in the dataset (``pairs``) and metrics;
* ``curve_<metric>.png``: one learning curve per metric, mean over seeds with a +-1 std band,
  against judge calls (left) and against pairs (right);
* ``summary.csv`` / ``summary.md``: per method and metric, the final value (mean +- std over
  seeds), the normalised area under the curve, the x the mean curve needs to reach Random's mean
  final value and the label-efficiency ratio (that / Random's x);
* ``significance.csv``: paired Wilcoxon signed-rank tests against Random over seeds on the final
  value and the AUC (two-sided), and on the value at half (``half_budget``) and at a third
  (``third_budget``, the issue-12 target) of Random's x against Random's final value
  (one-sided, "greater"), with Holm-corrected p-values per (metric, test) family and
  seeded bootstrap 95% CIs of the mean paired difference;
* ``query_rate.csv`` (and a table in ``summary.md``): per round, the judge queries, the
  pseudo-labels and the query rate of every method that pseudo-labels (ADPO,
  :mod:`prefloop.bench.policy_methods`);
* ``overhead.csv``: seconds per round by step, the selector's seconds per round, and the loop's
  own overhead share (everything but embedding, head training and held-out evaluation).

Which x a method's AUC, ratio and tests use (the ``axis`` column): judge calls, unless the
method put pairs in its dataset that the judge did not label (DeltaQwen's identity labels, ADPO's
pseudo-labels when kept), then pairs in the dataset. A method that labels pairs itself spends no
judge call on them, so on the judge-call axis it would look free ("ratio 0.00"); on the pair axis
it is compared with Random for what it produced. Random has as many pairs as judge calls, so its
curve is the same on both axes.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prefloop.bench.policy_methods import query_rate_markdown, query_rate_rows
from prefloop.bench.stats import (
    annotations_to_reach,
    auc,
    bootstrap_ci,
    efficiency_ratio,
    holm,
    labels_to_reach_ci,
    value_at,
    wilcoxon_vs_reference,
)

METRICS: dict[str, str] = {
    "downstream_accuracy": "downstream BT probe: held-out pairwise accuracy",
    "downstream_decisive_accuracy": "downstream BT probe: accuracy on decisive held-out pairs",
    "heldout_accuracy": "reward model: held-out pairwise accuracy",
    "heldout_spearman": "reward model: held-out per-prompt Spearman",
    "mean_chosen_score": "dataset: mean judge score of chosen",
    "mean_score_gap": "dataset: mean chosen - rejected score gap",
    "label_agreement": "dataset: labels agreeing with judge scores",
}
REFERENCE = "random"
BUDGET_SHARE_TESTS: dict[str, float] = {"half_budget": 0.5, "third_budget": 1 / 3}
"""One-sided tests: the method's value at this share of Random's labels > Random's final value."""
BOOTSTRAP_SEED = 20240917
AXES: dict[str, str] = {"annotations": "judge calls", "pairs": "pairs in the dataset"}
"""The x of a learning curve: a point column and its label."""

Curves = dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of dicts as CSV (columns in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def ratio_axis(points: list[dict[str, Any]], method: str) -> str:
    """``pairs`` if any dataset pair of ``method`` was not judge-labelled, else ``annotations``.

    Why: a method's label efficiency is measured on what it spends; pairs it labels itself cost
    no judge call, so they are counted as pairs (see the module docstring).
    """
    own = [p for p in points if p["method"] == method]
    return "pairs" if any(int(p["pairs"]) != int(p["annotations"]) for p in own) else "annotations"


def curves(points: list[dict[str, Any]], metric: str, axis: str = "annotations") -> Curves:
    """method -> seed -> (x on ``axis``, values), sorted by round."""
    out: Curves = defaultdict(dict)
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        grouped[(p["method"], int(p["seed"]))].append(p)
    for (method, seed), pts in grouped.items():
        pts.sort(key=lambda p: int(p["round"]))
        out[method][seed] = (
            np.array([float(p[axis]) for p in pts]),
            np.array([float(p[metric]) for p in pts]),
        )
    return out


def mean_curve(per_seed: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Mean x, mean and std of a metric per round index over seeds."""
    n = min(len(x) for x, _ in per_seed.values())
    xs = np.stack([x[:n] for x, _ in per_seed.values()])
    ys = np.stack([y[:n] for _, y in per_seed.values()])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return xs.mean(axis=0), np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)


def _final(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    keep = np.isfinite(y)
    if not keep.any():
        return float(x[-1]) if x.size else float("nan"), float("nan")
    return float(x[keep][-1]), float(y[keep][-1])


def summarize(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, metric): final, AUC, x to reach Random, efficiency ratio, axis."""
    rows: list[dict[str, Any]] = []
    by_axis = {axis: {m: curves(points, m, axis) for m in METRICS} for axis in AXES}
    finals_x = {axis: curves(points, next(iter(METRICS)), axis) for axis in AXES}
    for metric in METRICS:
        for method in sorted(by_axis["annotations"][metric]):
            axis = ratio_axis(points, method)
            cv = by_axis[axis][metric]
            per_seed = cv[method]
            ref_x = ref_final = float("nan")
            if REFERENCE in cv:
                ref_x, ref_final = _final(*mean_curve(cv[REFERENCE])[:2])
            finals = np.array([_final(x, y)[1] for x, y in per_seed.values()])
            aucs = np.array([auc(x, y) for x, y in per_seed.values()])
            mx, my, _ = mean_curve(per_seed)
            needed = annotations_to_reach(mx, my, ref_final)
            per_seed_ratio = []
            for seed, (x, y) in per_seed.items():
                if REFERENCE in cv and seed in cv[REFERENCE]:
                    rxf, ryf = _final(*cv[REFERENCE][seed])
                    per_seed_ratio.append(efficiency_ratio(annotations_to_reach(x, y, ryf), rxf))
            ratios = np.array(per_seed_ratio, dtype=np.float64)
            ci = ratio_ci(per_seed, cv.get(REFERENCE, {}))
            rows.append(
                {
                    "metric": metric,
                    "method": method,
                    "seeds": len(per_seed),
                    "axis": axis,
                    "final_annotations": _mean_last(finals_x["annotations"][method]),
                    "final_pairs": _mean_last(finals_x["pairs"][method]),
                    "final_mean": _nanstat(np.nanmean, finals),
                    "final_std": _nanstat(np.nanstd, finals),
                    "auc_mean": _nanstat(np.nanmean, aucs),
                    "auc_std": _nanstat(np.nanstd, aucs),
                    "to_reach_random": needed,
                    "efficiency_ratio": efficiency_ratio(needed, ref_x),
                    "ratio_ci_low": ci["ratio_low"],
                    "ratio_ci_high": ci["ratio_high"],
                    "seeds_reaching_random": int(np.isfinite(ratios).sum()),
                    "seeds_within_half": int((ratios <= 0.5).sum()),
                }
            )
    return rows


def ratio_ci(
    per_seed: dict[int, tuple[np.ndarray, np.ndarray]],
    reference: dict[int, tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """Bootstrap 95% CI (over seeds paired with Random's) of the labels-to-reach-Random ratio."""
    seeds = sorted(set(per_seed) & set(reference))
    nan = {"ratio": math.nan, "ratio_low": math.nan, "ratio_high": math.nan}
    if not seeds:
        return nan
    n = min(len(per_seed[s][0]) for s in seeds)
    m = min(len(reference[s][0]) for s in seeds)
    if n == 0 or m == 0:
        return nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    return labels_to_reach_ci(
        np.stack([per_seed[s][0][:n] for s in seeds]),
        np.stack([per_seed[s][1][:n] for s in seeds]),
        np.stack([reference[s][0][:m] for s in seeds]),
        np.stack([reference[s][1][:m] for s in seeds]),
        rng,
    )


def _mean_last(per_seed: dict[int, tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean over seeds of the last x of each curve (where the runs ended)."""
    return float(np.mean([x[-1] for x, _ in per_seed.values()]))


def _nanstat(fn: Any, a: np.ndarray) -> float:
    return float(fn(a)) if np.isfinite(a).any() else float("nan")


def significance(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired tests of every method against Random per metric, Holm-corrected per family."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for metric in METRICS:
        by_axis = {axis: curves(points, metric, axis) for axis in AXES}
        if REFERENCE not in by_axis["annotations"]:
            continue
        for test in ("final", "auc", *BUDGET_SHARE_TESTS):
            family: list[dict[str, Any]] = []
            for method in sorted(by_axis["annotations"]):
                if method == REFERENCE:
                    continue
                axis = ratio_axis(points, method)
                per_seed, ref = by_axis[axis][method], by_axis[axis][REFERENCE]
                seeds = sorted(set(per_seed) & set(ref))
                vals, refs = [], []
                for s in seeds:
                    (x, y), (rx, ry) = per_seed[s], ref[s]
                    rxf, ryf = _final(rx, ry)
                    if test == "final":
                        vals.append(_final(x, y)[1])
                        refs.append(ryf)
                    elif test == "auc":
                        vals.append(auc(x, y))
                        refs.append(auc(rx, ry))
                    else:
                        vals.append(value_at(x, y, BUDGET_SHARE_TESTS[test] * rxf))
                        refs.append(ryf)
                v, r = np.array(vals, dtype=np.float64), np.array(refs, dtype=np.float64)
                alternative = "greater" if test in BUDGET_SHARE_TESTS else "two-sided"
                median, p = wilcoxon_vs_reference(v, r, alternative)
                lo, hi = bootstrap_ci(v - r, rng)
                d = v - r
                family.append(
                    {
                        "metric": metric,
                        "test": test,
                        "method": method,
                        "reference": REFERENCE,
                        "axis": axis,
                        "seeds": int(np.isfinite(d).sum()),
                        "alternative": alternative,
                        "mean_diff": _nanstat(np.nanmean, d),
                        "median_diff": median,
                        "ci95_low": lo,
                        "ci95_high": hi,
                        "p_value": p,
                    }
                )
            adjusted = holm(np.array([f["p_value"] for f in family], dtype=np.float64))
            for f, pa in zip(family, adjusted, strict=True):
                f["p_holm"] = float(pa)
                f["significant_0.05"] = bool(pa < 0.05) if math.isfinite(pa) else False
            rows.extend(family)
    return rows


def overhead(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: mean seconds per round by step, and the loop's own overhead share.

    Overhead = round time - embedding (scoring + training features) - head training - held-out
    evaluation; i.e. generation (reading stored answers), head prediction, acquisition, judging
    and bookkeeping. The evaluation is the bench's measurement, not the loop's work, so it is
    reported in its own column.
    """
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        by_method[p["method"]].append(p)
    rows = []
    for method, pts in sorted(by_method.items()):

        def mean(key: str, pts: list[dict[str, Any]] = pts) -> float:
            return float(np.mean([float(p[key]) for p in pts]))

        round_s = mean("round_seconds")
        own = round_s - mean("embed_seconds") - mean("training_seconds")
        own -= mean("evaluation_seconds")
        rows.append(
            {
                "method": method,
                "rounds": len(pts),
                "acquisition_seconds_per_round": mean("acquisition_seconds"),
                "round_seconds": round_s,
                "embed_seconds": mean("embed_seconds"),
                "head_predict_seconds": mean("head_seconds"),
                "training_seconds": mean("training_seconds"),
                "evaluation_seconds": mean("evaluation_seconds"),
                "loop_overhead_seconds": own,
                "loop_overhead_share": own / round_s if round_s > 0 else float("nan"),
                "acquisition_share": mean("acquisition_seconds") / round_s
                if round_s > 0
                else float("nan"),
            }
        )
    return rows


def plot_curves(points: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per metric: mean over seeds against judge calls and against pairs, +-1 std band.

    Why: a method that labels pairs itself (DeltaQwen) spends no judge calls; only the two
    panels side by side show what each method spent and what it produced.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric, title in METRICS.items():
        fig, panels = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, (axis, label) in zip(panels, AXES.items(), strict=True):
            for method, per_seed in sorted(curves(points, metric, axis).items()):
                mx, my, sd = mean_curve(per_seed)
                style: dict[str, Any] = (
                    {"color": "black", "linewidth": 2.2} if method == REFERENCE else {}
                )
                (line,) = ax.plot(mx, my, marker="o", markersize=3, label=method, **style)
                ax.fill_between(mx, my - sd, my + sd, color=line.get_color(), alpha=0.15)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        panels[0].set_ylabel(metric)
        panels[1].legend(fontsize=7, ncol=2)
        fig.suptitle(f"{title} (mean, band = +-1 std over seeds)", fontsize=9)
        fig.tight_layout()
        path = out / f"curve_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def summary_markdown(
    summary: list[dict[str, Any]], sig: list[dict[str, Any]], notes: list[str]
) -> str:
    """The summary tables as markdown, one section per metric."""
    lines = ["# Label-efficiency bench", ""]
    lines += [f"- {n}" for n in notes]
    lines.append(
        "- ratio: the x a method's mean curve needs to reach Random's final value / Random's "
        "x, on the method's axis: judge calls, or pairs in the dataset for a method whose "
        "dataset holds pairs the judge did not label (e.g. delta_qwen's identity labels)"
    )
    sig_by = {(s["metric"], s["method"], s["test"]): s for s in sig}
    lines += headline_markdown(summary, sig_by)
    for metric, title in METRICS.items():
        rows = [r for r in summary if r["metric"] == metric]
        if not rows:
            continue
        lines += ["", f"## {title} (`{metric}`)", ""]
        lines.append(
            "| method | seeds | judge calls | pairs | final (mean ± std) | AUC | axis | "
            "to reach Random | ratio | seeds <= half | p final (Holm) | p AUC (Holm) | "
            "p half-budget (Holm) | p third-budget (Holm) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            ps = [
                sig_by.get((metric, r["method"], t), {}).get("p_holm", float("nan"))
                for t in ("final", "auc", *BUDGET_SHARE_TESTS)
            ]
            lines.append(
                f"| {r['method']} | {r['seeds']} | {r['final_annotations']:.0f} | "
                f"{r['final_pairs']:.0f} | {_fmt(r['final_mean'])} ± {_fmt(r['final_std'])} | "
                f"{_fmt(r['auc_mean'])} | {AXES[r['axis']]} | "
                f"{_fmt(r['to_reach_random'], 0)} | {_fmt(r['efficiency_ratio'], 2)} "
                f"| {r['seeds_within_half']} | " + " | ".join(_fmt(p) for p in ps) + " |"
            )
    return "\n".join(lines) + "\n"


def _ci(r: dict[str, Any]) -> str:
    lo, hi = r.get("ratio_ci_low", math.nan), r.get("ratio_ci_high", math.nan)
    if not math.isfinite(lo) and not math.isinf(lo):
        return "n/a"
    return f"[{_fmt(lo, 2) if math.isfinite(lo) else 'never'}, " + (
        f"{_fmt(hi, 2)}]" if math.isfinite(hi) else "never]"
    )


def headline_markdown(
    summary: list[dict[str, Any]], sig_by: dict[tuple[str, str, str], dict[str, Any]]
) -> list[str]:
    """The answer to "what does active selection buy me": the downstream proxy first.

    One row per method: the downstream probe's final accuracy (a fresh model trained only on the
    produced dataset), the loop's own reward-model accuracy beside it, and the share of Random's
    labels the method needs to reach Random's final downstream accuracy, with its bootstrap CI.
    """
    down = {r["method"]: r for r in summary if r["metric"] == "downstream_accuracy"}
    loop = {r["method"]: r for r in summary if r["metric"] == "heldout_accuracy"}
    if not down:
        return []
    lines = [
        "",
        "## Headline: what the produced dataset is worth",
        "",
        "downstream = a fresh Bradley-Terry MLP trained only on the method's dataset, accuracy on "
        "never-selected prompts; labels to reach Random = the share of Random's labels the "
        "method's mean curve needs to reach Random's final downstream accuracy (95% bootstrap CI "
        "over seeds; `never` = not reached within the budget)",
        "",
        "| method | seeds | judge calls | downstream final | reward model final | "
        "labels to reach Random | 95% CI | p AUC (Holm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in down.items():
        lp = loop.get(method, {})
        p_auc = sig_by.get(("downstream_accuracy", method, "auc"), {}).get("p_holm", math.nan)
        lines.append(
            f"| {method} | {r['seeds']} | {r['final_annotations']:.0f} | "
            f"{_fmt(r['final_mean'])} ± {_fmt(r['final_std'])} | "
            f"{_fmt(lp.get('final_mean', math.nan))} | {_fmt(r['efficiency_ratio'], 2)} | "
            f"{_ci(r)} | {_fmt(p_auc)} |"
        )
    return lines


def write_report(
    points: list[dict[str, Any]], out: Path, notes: list[str] | None = None
) -> dict[str, Path]:
    """Write every report file; returns their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(points)
    sig = significance(points)
    files = {
        "points": write_csv(out / "points.csv", points),
        "summary_csv": write_csv(out / "summary.csv", summary),
        "significance": write_csv(out / "significance.csv", sig),
        "overhead": write_csv(out / "overhead.csv", overhead(points)),
    }
    rates = query_rate_rows(points)
    if rates:
        files["query_rate"] = write_csv(out / "query_rate.csv", rates)
    md = out / "summary.md"
    text = summary_markdown(summary, sig, notes or []) + "\n".join(query_rate_markdown(rates))
    md.write_text(text + ("\n" if rates else ""), encoding="utf-8")
    files["summary_md"] = md
    for p in plot_curves(points, out):
        files[p.stem] = p
    return files
