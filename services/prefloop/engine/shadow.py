"""A shadow Random run beside the real one (``spec.evaluation.shadowRandom``).

Why: "what did active selection buy?" is the first question about a run, and the honest answer
is Random on the same prompts, with the same seed, reward model, trainer and budget. With the
stored-score oracle (``judge.kind: oracle``) its labels cost nothing, so after the real run the
embedded runner drives a second round engine with ``acquisition.method: random`` (batch scope)
into ``<run>/shadow-random/`` (its ``metrics.csv`` / ``metrics.jsonl`` and checkpoints),
reading the real run's feature cache (no text is embedded twice), and the summary and
``learning_curve.png`` show both curves. It checkpoints like any run, so ``--resume`` continues
it too. Service and cluster runs skip it (their roles are remote).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefloop.data.records import PromptItem
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.checkpoint import LATEST
from prefloop.engine.report import write_metrics
from prefloop.engine.round_engine import RoundEngine
from prefloop.spec import ActiveRun, parse_activerun

SHADOW_DIR = "shadow-random"
SHADOW_METHOD = "random"


def shadow_run(run: ActiveRun, cache_dir: Path) -> ActiveRun:
    """The run with Random in batch scope, sharing ``cache_dir``; everything else equal."""
    data = run.model_dump(mode="json", by_alias=True)
    spec = data["spec"]
    spec["acquisition"] = {"method": SHADOW_METHOD, "params": {}}
    spec["evaluation"]["shadowRandom"] = False
    spec["rewardModel"]["embedder"]["cacheDir"] = str(cache_dir.resolve())
    return parse_activerun(data, source=f"{run.metadata.name} (shadow random)")


def run_shadow_random(
    run: ActiveRun,
    run_dir: Path,
    manifest_dir: Path | None,
    pool: list[PromptItem],
    heldout: list[PromptItem],
    resume: bool,
) -> list[dict[str, Any]]:
    """Run the shadow Random to completion (or continue it); returns its per-round metrics."""
    es = run.spec.reward_model.embedder
    cache_dir = Path(es.cache_dir) if es.cache_dir else run_dir / "features"
    shadow = shadow_run(run, cache_dir)
    shadow_dir = run_dir / SHADOW_DIR
    roles, _, _ = build_embedded_roles(shadow, shadow_dir, manifest_dir)
    engine = RoundEngine(shadow, roles, shadow_dir, pool, heldout)
    started = (shadow_dir / "checkpoints" / LATEST).exists()
    result = engine.run_rounds(resume=resume and started)
    write_metrics(result.state.metrics, shadow_dir)
    return result.state.metrics


def annotations_to_reach(metrics: list[dict[str, Any]], target: float) -> int | None:
    """The first annotation count at which held-out accuracy reached ``target`` (None: never).

    Why: "labels the chosen method needed for Random's final accuracy" is the run's own
    label-efficiency figure (the bench measures it over seeds).
    """
    if math.isnan(target):
        return None
    for m in metrics:
        acc = m.get("heldout_accuracy", math.nan)
        if isinstance(acc, float) and not math.isnan(acc) and acc >= target:
            return int(m["annotations_used"])
    return None


def shadow_summary(
    metrics: list[dict[str, Any]], shadow: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The summary's comparison with the shadow Random (None without one)."""
    if not shadow:
        return None
    final = float(shadow[-1].get("heldout_accuracy", math.nan))
    return {
        "final_heldout_accuracy": final,
        "annotations_used": int(shadow[-1]["annotations_used"]),
        "annotations_to_reach_random": annotations_to_reach(metrics, final),
        "dir": SHADOW_DIR,
    }
