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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prefloop.bus.publisher import RunPublisher
from prefloop.data.readers import load_prompt_items
from prefloop.data.run_dataset import write_run_dataset
from prefloop.engine.build import build_embedded_roles, check_pool
from prefloop.engine.report import (
    dataset_provenance,
    plot_learning_curve,
    summarize,
    write_metrics,
)
from prefloop.engine.round_engine import Roles, RoundEngine, RunResult, split_prompts
from prefloop.spec import ActiveRun, resolve_path


def run_dir_for(run: ActiveRun, override: str | None = None) -> Path:
    """The run directory: ``--output`` if given, else ``spec.output.dir`` with ``{name}``."""
    raw = override or run.spec.output.dir
    return Path(raw.replace("{name}", run.metadata.name))


def load_pool(run: ActiveRun, manifest_dir: Path | None) -> tuple[list[Any], list[Any]]:
    """Read the prompts, check them, shuffle with the seed and set the held-out part aside."""
    ps = run.spec.prompts
    items = load_prompt_items(
        resolve_path(ps.path, manifest_dir), format=ps.format, kind=ps.kind, limit=ps.limit
    )
    check_pool(items, run.spec.responses.source)
    return split_prompts(run, items)


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
) -> RunResult:
    """Run to completion and write every output file; ``roles`` defaults to embedded ones.

    ``publisher`` (service mode with Kafka) also sends each round's records to the run's topics.
    ``wait_ready`` (service mode) blocks until the role services are up before round 1; it gets
    a function that prints one progress line.
    """
    console = console or Console(stderr=True)
    run_dir = run_dir_for(run, output)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "activerun.yaml").write_text(run.to_yaml())
    pool, heldout = load_pool(run, manifest_dir)
    if roles is None:
        roles, _, _ = build_embedded_roles(run, run_dir, manifest_dir)
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
    if result.state.metrics:
        files["plot"] = str(
            plot_learning_curve(
                result.state.metrics,
                run_dir / "learning_curve.png",
                f"{run.metadata.name}: {spec.acquisition.method}",
            )
        )
    summary = summarize(run, result, files)
    console.print(
        f"done: {summary['pairs_in_dataset']} pairs, {summary['annotations_used']} annotations, "
        f"stop: {summary['stop_reason']}. See {run_dir / 'summary.md'}"
    )
    return result
