"""``prefloop bench calibration``: is each reward head's sigma worth acting on?

For every head variant (a head kind plus manifest overrides, e.g. ``ensemble`` or
``ens-boot:rewardModel.head.bootstrap=true``) the bench trains the head exactly as the loop
does (``engine.build.build_head_trainer``: the same replay buffer, anchor schedule, steps and
seeds) on a labelled subset of prompts, one random judged pair per prompt in rounds of
``--batch-size`` prompts, and after the rounds that reach each ``--labels`` count it measures on
held-out prompts what ``calibration_metrics`` defines: does sigma predict the error of mu, the
held-out preference NLL, the pairwise ECE and accuracy.

Held-out prompts come from K-fold cross-validation over prompts (``--folds``): every prompt is
held out once, and a setting is chosen by its mean over folds and seeds, never by one split
(issue 12: "choose by cross-validation over prompts"). Pairs are labelled by the stored judge
scores (the deterministic oracle: the higher score wins; equal scores are ties, never trained on).

Files: ``calibration.csv`` (one row per variant, seed, fold and label count),
``calibration_summary.csv`` and ``calibration.md`` (mean +- std over folds x seeds),
``reliability.csv`` and ``reliability.png`` (pooled reliability diagrams).
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from prefloop.bench.calibration_metrics import head_calibration
from prefloop.bench.label_efficiency import BASE_MANIFEST
from prefloop.bench.report import write_csv
from prefloop.data.records import PromptItem, ScoredBatch
from prefloop.engine.build import build_head_trainer, build_reward_model
from prefloop.engine.checkpoint import derive_seed
from prefloop.reward.threads import single_threaded
from prefloop.spec import ActiveRun, SpecError, apply_override, parse_activerun

HEAD_KINDS = ("ensemble", "epinet", "bgpm")
METRIC_COLUMNS = (
    "accuracy",
    "sigma_error_spearman",
    "pair_sigma_error_spearman",
    "nll",
    "nll_plugin",
    "ece",
    "ece_plugin",
    "mean_sigma",
    "sigma_cv",
)


class CalibrationConfigError(ValueError):
    """The calibration bench was asked for something it cannot run."""


@dataclass(frozen=True)
class Variant:
    """A named head configuration: manifest overrides below ``spec.`` (camelCase paths)."""

    name: str
    overrides: tuple[str, ...]


def parse_variant(text: str) -> Variant:
    """``NAME`` (a head kind) or ``NAME:PATH=VALUE;PATH=VALUE`` (paths below ``spec.``).

    Why: a variant is what a user would write in a manifest, so a setting found here is the
    setting to put in ``rewardModel.head`` or ``trainer``.
    """
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise CalibrationConfigError(f"--variant {text!r}: give NAME or NAME:PATH=VALUE;...")
    overrides = [o.strip() for o in rest.split(";") if o.strip()] if sep else []
    if not sep:
        if name not in HEAD_KINDS:
            raise CalibrationConfigError(
                f"--variant {text!r}: a bare name must be a head kind {list(HEAD_KINDS)}"
            )
        overrides = [f"rewardModel.head.kind={name}"]
    return Variant(name, tuple(overrides))


@dataclass
class CalibrationConfig:
    """What one calibration bench runs."""

    data: Path
    out: Path
    variants: list[Variant]
    labels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    folds: int = 4
    seeds: int = 1
    batch_size: int = 64
    cache_dir: Path | None = None
    max_length_tokens: int = 256
    num_bins: int = 10

    def __post_init__(self) -> None:
        if not self.variants:
            raise CalibrationConfigError("give at least one head variant")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise CalibrationConfigError(f"variant names must be unique, got {names}")
        if self.folds < 2 or self.seeds < 1 or self.batch_size < 1:
            raise CalibrationConfigError(
                f"--folds ({self.folds}) must be >= 2, --seeds ({self.seeds}) and --batch-size "
                f"({self.batch_size}) >= 1"
            )
        if not self.labels or min(self.labels) < 1:
            raise CalibrationConfigError(f"--labels must be positive counts, got {self.labels}")
        self.labels = sorted(set(self.labels))


def build_variant_run(cfg: CalibrationConfig, variant: Variant, seed: int) -> ActiveRun:
    """The bench manifest (the label-efficiency bench's, i.e. the quickstart's) + the variant."""
    data = copy.deepcopy(BASE_MANIFEST)
    s = data["spec"]
    slug = re.sub(r"[^a-z0-9-]+", "-", variant.name.lower()).strip("-") or "variant"
    data["metadata"]["name"] = f"calibration-{slug}-s{seed}"
    s["seed"] = seed
    s["batchSize"] = cfg.batch_size
    s["prompts"]["path"] = str(Path(cfg.data).resolve())
    s["rewardModel"]["embedder"]["maxLengthTokens"] = cfg.max_length_tokens
    cache = cfg.cache_dir or cfg.out / "features"
    s["rewardModel"]["embedder"]["cacheDir"] = str(Path(cache).resolve())
    try:
        for ov in variant.overrides:
            apply_override(data, f"spec.{ov}")
        return parse_activerun(data, source=f"calibration variant {variant.name!r}")
    except SpecError as exc:
        raise CalibrationConfigError(f"--variant {variant.name}: {exc}") from None


def labelled_pairs(
    scores: np.ndarray, mask: np.ndarray, order: np.ndarray, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """(prompt, winner slot, loser slot): one random pair with differing scores per prompt, in
    ``order``; prompts whose responses all tie give none (a tie is never trained on)."""
    out = []
    for p in order:
        slots = np.nonzero(mask[p] & np.isfinite(scores[p]))[0]
        if slots.size < 2:
            continue
        a, b = rng.choice(slots, size=2, replace=False)
        if scores[p, a] == scores[p, b]:
            distinct = [(i, j) for i in slots for j in slots if scores[p, i] > scores[p, j]]
            if not distinct:
                continue
            a, b = distinct[int(rng.integers(len(distinct)))]
        win, lose = (a, b) if scores[p, a] > scores[p, b] else (b, a)
        out.append((int(p), int(win), int(lose)))
    return out


def fold_points(
    cfg: CalibrationConfig,
    variant: Variant,
    seed: int,
    fold: int,
    items: list[PromptItem],
    features: np.ndarray,
    batch: ScoredBatch,
    test: np.ndarray,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train one variant on the other folds' prompts round by round; evaluate at each count."""
    run = build_variant_run(cfg, variant, seed * 1000 + fold)
    trainer = build_head_trainer(run, features.shape[2])
    train = np.setdiff1d(np.arange(len(items)), test)
    rng = np.random.default_rng(derive_seed(seed, fold, "calibration-pairs"))
    pairs = labelled_pairs(batch.judge_scores, batch.mask, rng.permutation(train), rng)
    cuts = sorted({*range(cfg.batch_size, len(pairs), cfg.batch_size), *cfg.labels})
    cuts = [c for c in cuts if c <= len(pairs)]
    test_feats = features[test]
    rows: list[dict[str, Any]] = []
    bins_out: list[dict[str, Any]] = []
    done = 0
    for r, cut in enumerate(cuts):
        chunk = pairs[done:cut]
        idx = np.array(chunk)
        with single_threaded():
            trainer.train_round(
                features[idx[:, 0], idx[:, 1]],
                features[idx[:, 0], idx[:, 2]],
                [f"{items[p].prompt_id}:{a}:{b}" for p, a, b in chunk],
                n_done=cut,
                n_total=len(train),
                seed=derive_seed(run.spec.seed, r, "training"),
            )
            done = cut
            if cut not in cfg.labels:
                continue
            metrics, bins = head_calibration(
                trainer.head,
                test_feats,
                batch.judge_scores[test],
                batch.mask[test],
                cfg.num_bins,
            )
        key = {"variant": variant.name, "seed": seed, "fold": fold, "labels": cut}
        rows.append({**key, **metrics})
        bins_out.extend({**key, "bin": b, **row} for b, row in enumerate(bins))
    return rows, bins_out


def run_calibration(
    cfg: CalibrationConfig, console: Console | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every (seed, fold, variant): per-count calibration rows and reliability bins."""
    from prefloop.data.readers import load_prompt_items

    console = console or Console(stderr=True)
    items = load_prompt_items(cfg.data)
    if len(items) < cfg.folds:
        raise CalibrationConfigError(f"{cfg.data}: {len(items)} prompts for {cfg.folds} folds")
    most = len(items) - -(-len(items) // cfg.folds)  # training prompts of the largest fold
    if cfg.labels[-1] > most:
        raise CalibrationConfigError(
            f"--labels {cfg.labels[-1]} exceeds the {most} training prompts a fold has "
            f"({len(items)} prompts in {cfg.data}, {cfg.folds} folds, one pair per prompt)"
        )
    cfg.out.mkdir(parents=True, exist_ok=True)
    batch = ScoredBatch.from_items(items)
    first, *_ = [build_variant_run(cfg, v, 0) for v in cfg.variants]  # all valid before work
    model = build_reward_model(first, cfg.out, None)
    features = model.features(items, batch.mask)
    rows: list[dict[str, Any]] = []
    bins: list[dict[str, Any]] = []
    for seed in range(cfg.seeds):
        perm = np.random.default_rng(derive_seed(seed, -1, "calibration-folds")).permutation(
            len(items)
        )
        for fold, test in enumerate(np.array_split(perm, cfg.folds)):
            for variant in cfg.variants:
                r, b = fold_points(cfg, variant, seed, fold, items, features, batch, test)
                rows.extend(r)
                bins.extend(b)
                if r:
                    last = r[-1]
                    console.print(
                        f"seed {seed} fold {fold} {variant.name:>12s} @{last['labels']:>4}: "
                        f"acc {last['accuracy']:.3f} nll {last['nll']:.3f} ece {last['ece']:.3f} "
                        f"rho(sigma,err) {last['sigma_error_spearman']:+.3f}"
                    )
    return rows, bins


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over folds x seeds of every metric, per (variant, label count)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["variant"], int(r["labels"]))].append(r)
    out = []
    for (variant, labels), group in groups.items():
        row: dict[str, Any] = {"variant": variant, "labels": labels, "runs": len(group)}
        for col in METRIC_COLUMNS:
            vals = np.array([float(g[col]) for g in group])
            vals = vals[np.isfinite(vals)]
            row[col] = float(vals.mean()) if vals.size else float("nan")
            row[f"{col}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        out.append(row)
    return out


def pooled_bins(bins: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reliability bins pooled over folds x seeds (count-weighted), per (variant, count)."""
    acc: dict[tuple[str, int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0, 0])
    for b in bins:
        slot = acc[(b["variant"], int(b["labels"]), int(b["bin"]))]
        n = float(b["count"])
        if n > 0:
            slot[0] += n
            slot[1] += n * float(b["confidence"])
            slot[2] += n * float(b["accuracy"])
        slot[3], slot[4] = float(b["lower"]), float(b["upper"])
    out = []
    for (variant, labels, k), (n, conf, hit, lo, hi) in sorted(acc.items()):
        out.append(
            {
                "variant": variant,
                "labels": labels,
                "bin": k,
                "lower": lo,
                "upper": hi,
                "count": n,
                "confidence": conf / n if n else float("nan"),
                "accuracy": hit / n if n else float("nan"),
            }
        )
    return out


def plot_reliability(pooled: list[dict[str, Any]], path: Path) -> Path:
    """One panel per label count: accuracy against confidence per variant, and the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({int(b["labels"]) for b in pooled})
    variants = list(dict.fromkeys(b["variant"] for b in pooled))
    fig, axes = plt.subplots(1, len(counts), figsize=(4 * len(counts), 4), squeeze=False)
    for ax, labels in zip(axes[0], counts, strict=True):
        ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle=":", label="calibrated")
        for v in variants:
            pts = [b for b in pooled if b["variant"] == v and b["labels"] == labels and b["count"]]
            ax.plot(
                [b["confidence"] for b in pts], [b["accuracy"] for b in pts], marker="o", label=v
            )
        ax.set_title(f"{labels} labels")
        ax.set_xlabel("predicted P(more likely side wins)")
        ax.set_xlim(0.5, 1.0)
        ax.set_ylim(0.3, 1.0)
    axes[0][0].set_ylabel("observed frequency")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_markdown(summary: list[dict[str, Any]], notes: list[str]) -> str:
    """The summary as a Markdown table (mean +- std over folds x seeds)."""
    cols = ("accuracy", "nll", "ece", "sigma_error_spearman", "pair_sigma_error_spearman")
    lines = ["# Reward-head calibration", "", *[f"- {n}" for n in notes], ""]
    lines.append("| variant | labels | " + " | ".join(cols) + " | mean sigma | sigma CV |")
    lines.append("|---|---:|" + "---:|" * (len(cols) + 2))
    for r in sorted(summary, key=lambda r: (r["labels"], r["variant"])):
        cells = [f"{r[c]:.3f} ± {r[f'{c}_std']:.3f}" for c in cols]
        lines.append(
            f"| {r['variant']} | {r['labels']} | "
            + " | ".join(cells)
            + f" | {r['mean_sigma']:.3f} | {r['sigma_cv']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_calibration_report(
    rows: list[dict[str, Any]], bins: list[dict[str, Any]], out: Path, notes: list[str]
) -> dict[str, Path]:
    """Write every file of the report (module docstring); returns their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    pooled = pooled_bins(bins)
    md = out / "calibration.md"
    md.write_text(summary_markdown(summary, notes), encoding="utf-8")
    return {
        "rows_csv": write_csv(out / "calibration.csv", rows),
        "summary_csv": write_csv(out / "calibration_summary.csv", summary),
        "summary_md": md,
        "reliability_csv": write_csv(out / "reliability.csv", pooled),
        "reliability_png": plot_reliability(pooled, out / "reliability.png"),
    }
