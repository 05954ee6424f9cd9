"""Run an ActiveRun embedded: load prompts, build the roles, drive rounds, write the outputs.

The run directory is a Hugging Face dataset: ``README.md`` (the dataset card) and ``data/``
(``train.jsonl`` / ``train.parquet`` in TRL's conversational format, ``ties.*``; see
:mod:`prefloop.data.run_dataset`). Beside them, where ``load_dataset`` does not look:
``metrics.csv`` / ``metrics.jsonl`` (one row per round), ``learning_curve.png``, ``summary.md`` /
``summary.json``, ``activerun.yaml`` (the manifest as run), ``features/`` (the embedding cache)
and ``checkpoints/`` (what ``--resume`` continues from).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prefloop.bus.publisher import RunPublisher
from prefloop.data.run_dataset import write_run_dataset
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.metrics import DriverMetrics
from prefloop.engine.preflight import check_data, check_run_dir, run_dir_for
from prefloop.engine.report import (
    dataset_provenance,
    plot_learning_curve,
    summarize,
    write_metrics,
)
from prefloop.engine.round_engine import Roles, RoundEngine, RunResult, split_prompts
from prefloop.engine.shadow import run_shadow_random, shadow_summary
from prefloop.spec import ActiveRun
from prefloop.status import record_phase


def load_pool(run: ActiveRun, manifest_dir: Path | None) -> tuple[list[Any], list[Any]]:
    """Read the prompts, check them, shuffle with the seed and set the held-out part aside."""
    return split_prompts(run, check_data(run, manifest_dir).items)


def execute(
    run: ActiveRun,
    *,
    manifest_dir: Path | None = None,
    output: str | None = None,
    resume: bool = False,
    roles: Roles | None = None,
    console: Console | None = None,
    publisher: RunPublisher | None = None,
    wait_ready: Callable[[Callable[[str], None]], None] | None = None,
    protect_existing: bool = False,
    metrics: DriverMetrics | None = None,
) -> RunResult:
    """Run to completion and write every output file; ``roles`` defaults to embedded ones.

    Nothing is written before the data validates (and, on ``resume``, before the checkpoint is
    found to belong to this configuration); ``protect_existing`` (``prefloop run``) also refuses
    to start afresh over a directory that holds a run (callers that own their directories, like
    the bench, start over). ``status.json`` records the phase: running, then finished or failed.

    ``publisher`` (service mode with Kafka) also sends each round's records to the run's topics.
    ``wait_ready`` (service mode) blocks until the role services are up before round 1; it gets
    a function that prints one progress line. ``metrics`` (``prefloop run --metrics-port``) gets
    the loop gauges after every round and when the loop stops.
    """
    console = console or Console(stderr=True)
    run_dir = run_dir_for(run, output)
    if roles is None and run.spec.judge.kind == "human":  # nobody could label: say so now
        from prefloop.judge.human.judge import check_human_run

        check_human_run(run, "run", manifest_dir)
    data = check_data(run, manifest_dir)
    if resume or protect_existing:
        check_run_dir(run, run_dir, resume=resume)
    for warning in data.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    pool, heldout = split_prompts(run, data.items)
    shadow = run.spec.evaluation.shadow_random
    if roles is None:
        roles = _embedded_roles(run, run_dir, manifest_dir)
    elif shadow:
        console.print("note: evaluation.shadowRandom is skipped: it runs with embedded roles only")
        shadow = False
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "activerun.yaml").write_text(run.to_yaml())
    record_phase(run_dir, "running", warnings=list(data.warnings))
    try:
        result, summary = _rounds_and_outputs(
            run,
            run_dir,
            pool,
            heldout,
            roles,
            resume,
            console,
            publisher,
            wait_ready,
            metrics,
            shadow=shadow,
            manifest_dir=manifest_dir,
        )
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        record_phase(
            run_dir,
            "interrupted" if interrupted else "failed",
            error=None if interrupted else f"{type(e).__name__}: {e}",
            warnings=list(data.warnings),
        )
        raise
    record_phase(
        run_dir, "finished", stop_reason=summary["stop_reason"], warnings=summary["warnings"]
    )
    return result


def _embedded_roles(run: ActiveRun, run_dir: Path, manifest_dir: Path | None) -> Roles:
    """Build the in-process roles; a failure removes the run directory if this call made it."""
    created = not run_dir.exists()
    try:
        roles, _, _ = build_embedded_roles(run, run_dir, manifest_dir)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return roles


def _rounds_and_outputs(
    run: ActiveRun,
    run_dir: Path,
    pool: list[Any],
    heldout: list[Any],
    roles: Roles,
    resume: bool,
    console: Console,
    publisher: RunPublisher | None,
    wait_ready: Callable[[Callable[[str], None]], None] | None,
    metrics: DriverMetrics | None = None,
    shadow: bool = False,
    manifest_dir: Path | None = None,
) -> tuple[RunResult, dict[str, Any]]:
    """Drive the rounds, then write the dataset, metrics, plot and summary; with ``shadow``
    also the shadow Random run (``engine/shadow.py``)."""
    spec = run.spec
    total_rounds = math.ceil(len(pool) / spec.batch_size)
    if spec.budget.max_rounds is not None:
        total_rounds = min(total_rounds, spec.budget.max_rounds)
    console.print(
        f"[bold]prefloop[/] run [cyan]{run.metadata.name}[/]: {len(pool)} prompts "
        f"(+{len(heldout)} held out), method [magenta]{spec.acquisition.method}[/], "
        f"batch {spec.batch_size}, seed {spec.seed} -> {run_dir}"
    )
    if wait_ready is not None:
        wait_ready(lambda line: console.print(line, markup=False, highlight=False))
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("rounds", total=total_rounds)

        def on_round(m: dict[str, Any]) -> None:
            if metrics is not None:
                metrics.observe_round(m)
            progress.update(task, completed=m["round"])
            acc = m.get("heldout_accuracy")
            acc_txt = f"{acc:.3f}" if isinstance(acc, float) and not math.isnan(acc) else "n/a"
            progress.console.print(
                f"round {m['round']:>3}: {m['pairs_in_dataset']} pairs, "
                f"{m['annotations_used']} annotations, held-out acc {acc_txt}, "
                f"gap {m['mean_score_gap']:.3f}, {m['round_seconds']:.1f}s"
            )

        engine = RoundEngine(
            run, roles, run_dir, pool, heldout, on_round=on_round, publisher=publisher
        )
        result = engine.run_rounds(resume=resume)
        if metrics is not None:
            metrics.observe_finished(result.state)
        if resume:
            progress.update(task, completed=result.state.round)
    dataset = write_run_dataset(
        run_dir,
        result.rows,
        dataset_provenance(run),
        formats=spec.output.formats,
        ties=spec.output.ties,
    )
    files = {name: str(p) for name, p in dataset.items()}
    csv_path, _ = write_metrics(result.state.metrics, run_dir)
    files["metrics"] = str(csv_path)
    shadow_metrics: list[dict[str, Any]] = []
    if shadow:
        console.print("shadow run: random on the same prompts (evaluation.shadowRandom) ...")
        shadow_metrics = run_shadow_random(run, run_dir, manifest_dir, pool, heldout, resume)
    if result.state.metrics:
        files["plot"] = str(
            plot_learning_curve(
                result.state.metrics,
                run_dir / "learning_curve.png",
                f"{run.metadata.name}: {spec.acquisition.method}",
                shadow=shadow_metrics,
                method=spec.acquisition.method,
            )
        )
    shortfall = budget_shortfall(
        run, result.state.annotations_used, result.state.pairs_used, result.state.stop_reason
    )
    summary = summarize(
        run,
        result,
        files,
        warnings=shortfall,
        shadow=shadow_summary(result.state.metrics, shadow_metrics),
    )
    for warning in shortfall:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"done: {summary['pairs_in_dataset']} pairs, {summary['annotations_used']} annotations, "
        f"stop: {summary['stop_reason']}. See {run_dir / 'summary.md'}"
    )
    return result, summary


def budget_shortfall(
    run: ActiveRun, annotations_used: int, pairs_used: int, stop_reason: str
) -> Sequence[str]:
    """A warning per budget the run stopped short of because it ran out of prompts, with the gap.

    Why: "prompts exhausted" with budget left is a run that did less than asked; the summary
    must say so rather than leave it to a reader of the metrics. A run stopped by one of its
    limits (annotations, pairs, rounds: whichever comes first) did what it was asked.
    """
    if stop_reason != "prompts exhausted":
        return []
    b = run.spec.budget
    out = []
    for name, limit, used, unit in (
        ("budget.maxAnnotations", b.max_annotations, annotations_used, "annotations"),
        ("budget.maxPairs", b.max_pairs, pairs_used, "dataset pairs"),
    ):
        if limit is not None and used < limit:
            out.append(
                f"{name} {limit} was not reached: the run stopped ({stop_reason}) after "
                f"{used} {unit}, {limit - used} short"
            )
    return out
