"""Checks before a run writes anything: its data, the budget the data can fill, its directory.

``prefloop validate`` and ``prefloop run`` share them, so a manifest that validates also starts,
and a run that cannot start leaves nothing behind:

1. :func:`check_data` reads the prompts file with the strict reader (every broken row, duplicate
   id or missing file is a :class:`~prefloop.data.errors.DataError` naming ``file:line``), then
   checks what the manifest needs from the rows: two responses per prompt for a precomputed
   pool, and a usable stored score on every response for the stored-score oracle (or a rule that
   reads judge scores). All problems are listed at once.
2. :func:`reachable_annotations` bounds from above how many pairs the run can select at all
   (pool prompts after the held-out split, rounds, pairs per prompt, pairs a prompt has); a
   budget above the bound cannot be reached, and :func:`budget_warnings` says so and by how much.
3. :func:`check_run_dir` refuses to start over a directory that holds a run (use ``--resume``)
   and, when resuming, checks the checkpoint belongs to this configuration.

Nothing here writes a file or imports the engine's heavy modules (torch, the embedders).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefloop.acquisition.registry import SOURCE_MODELS_HURT, RuleInfo, get_rule
from prefloop.data.errors import ProblemCollector
from prefloop.data.formats import detect_format, iter_raw_rows
from prefloop.data.readers import load_prompt_items
from prefloop.data.records import PromptItem
from prefloop.spec import ActiveRun, resolve_path
from prefloop.status import CHECKPOINT_POINTER, RunDirError, holds_run, read_status

RESUME_HINT = "only budget and output may change on resume; use a new output.dir for a new run"


@dataclass(frozen=True)
class DataReport:
    """The prompts a run will read, checked, and what they allow."""

    path: Path
    items: list[PromptItem]
    """Every prompt of the file (before the shuffle and the held-out split)."""
    pool_size: int
    """Prompts the rule selects from (the rest is held out for evaluation)."""
    heldout_size: int
    reachable_annotations: int
    """Upper bound on the pairs the run can select, hence on judge calls and dataset pairs."""
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``prefloop validate -o json``."""
        counts = [len(it.responses) for it in self.items]
        return {
            "path": str(self.path),
            "prompts": len(self.items),
            "pool": self.pool_size,
            "heldout": self.heldout_size,
            "responses_per_prompt": {"min": min(counts), "max": max(counts)},
            "reachable_annotations": self.reachable_annotations,
        }


def run_dir_for(run: ActiveRun, override: str | None = None) -> Path:
    """The run directory: ``--output`` if given, else ``spec.output.dir`` with ``{name}``."""
    raw = override or run.spec.output.dir
    return Path(raw.replace("{name}", run.metadata.name))


def heldout_count(n_prompts: int, fraction: float) -> int:
    """Prompts the held-out split sets aside: ``floor(n * fraction)``, none if nothing is left.

    Why: the budget check needs the pool size without importing the engine; a test holds this
    to ``round_engine.split_prompts``.
    """
    n_held = math.floor(n_prompts * fraction)
    return 0 if n_held and n_prompts - n_held < 1 else n_held


def check_data(run: ActiveRun, manifest_dir: Path | None) -> DataReport:
    """Read and check the run's prompts; raise one DataError listing every problem.

    Why: a broken row found in round 7 of a long run costs the rounds before it; found here it
    costs nothing, and ``prefloop validate`` finds it without running anything.
    """
    ps = run.spec.prompts
    path = resolve_path(ps.path, manifest_dir)
    items = load_prompt_items(path, format=ps.format, kind=ps.kind, limit=ps.limit)
    _check_rows(run, path, items)
    n_held = heldout_count(len(items), run.spec.evaluation.heldout_fraction)
    pool_size = len(items) - n_held
    reachable = reachable_annotations(run, items, pool_size)
    return DataReport(
        path=path,
        items=items,
        pool_size=pool_size,
        heldout_size=n_held,
        reachable_annotations=reachable,
        warnings=(
            *budget_warnings(run, pool_size, n_held, reachable),
            *source_model_warnings(run),
        ),
    )


def _check_rows(run: ActiveRun, path: Path, items: list[PromptItem]) -> None:
    spec = run.spec
    precomputed = spec.responses.source == "precomputed"
    needs_scores = precomputed and (
        spec.judge.kind == "oracle" or "judge_scores" in get_rule(spec.acquisition.method).needs
    )
    logit = spec.judge.kind == "oracle" and spec.judge.score_transform == "logit"
    found: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        if precomputed and len(item.responses) < 2:
            found.append(
                (
                    index,
                    f"prompt {item.prompt_id!r} has {len(item.responses)} response(s); "
                    "responses.source: precomputed needs at least 2 stored responses per prompt "
                    "(or use source: models to generate them)",
                )
            )
            continue
        if not needs_scores:
            continue
        for n, response in enumerate(item.responses):
            problem = _score_problem(response.score, logit)
            if problem:
                found.append((index, f"responses[{n}].score {problem}"))
    if not found:
        return
    where = _row_locations(path, run, max(i for i, _ in found) + 1)
    problems = ProblemCollector(str(path))
    for index, message in found:
        problems.add(where[index] if index < len(where) else f"{path}[item {index}]", message)
    problems.raise_if_any()


def _score_problem(score: float | None, logit: bool) -> str:
    if score is None or not math.isfinite(score):
        return (
            f"is {score!r}: the stored-score oracle (judge.kind: oracle) needs a finite score "
            "on every response"
        )
    if logit and not 0.0 <= score <= 1.0:
        return (
            f"is {score}, outside [0, 1], which judge.scoreTransform: logit needs "
            "(use scoreTransform: identity for rating scales)"
        )
    return ""


def _row_locations(path: Path, run: ActiveRun, count: int) -> list[str]:
    """``file:line`` of the first ``count`` rows (the reader kept every row, in file order)."""
    fmt = run.spec.prompts.format
    out: list[str] = []
    for raw in iter_raw_rows(path, detect_format(path) if fmt == "auto" else fmt):
        if len(out) >= count:
            break
        out.append(raw.where)
    return out


def reachable_annotations(run: ActiveRun, items: list[PromptItem], pool_size: int) -> int:
    """An upper bound on the pairs the run can select, whichever prompts the shuffle pools.

    Why: a budget above it stops the run early ("prompts exhausted") however good the rule;
    users must hear that before the run, not find it in the metrics. The bound takes the prompts
    the rounds can consume (the pool, or ``maxRounds`` batches), at most ``pairs per prompt``
    pairs from each (never more than ``n (n - 1) / 2`` for ``n`` responses), and at most a batch
    rule's ``max_pairs`` per round; it is exact when every prompt has as many responses.
    """
    spec = run.spec
    consumed = pool_size
    if spec.budget.max_rounds is not None:
        consumed = min(consumed, spec.budget.max_rounds * spec.batch_size)
    if consumed <= 0:
        return 0
    rule = get_rule(spec.acquisition.method)
    per_prompt = _pairs_per_prompt_cap(rule, spec.acquisition.params, spec.pairs_per_prompt)
    sizes = [
        len(spec.responses.models) if spec.responses.source == "models" else len(it.responses)
        for it in items
    ]
    caps = sorted((_pair_count(n, per_prompt) for n in sizes), reverse=True)
    bound = sum(caps[:consumed])
    if "max_pairs" in rule.parameters():
        # the engine passes max_pairs = batch prompts x pairsPerPrompt unless params set it
        max_pairs = spec.acquisition.params.get("max_pairs")
        if max_pairs is None:
            bound = min(bound, consumed * spec.pairs_per_prompt)
        else:
            bound = min(bound, math.ceil(consumed / spec.batch_size) * int(max_pairs))
    return bound


def _pairs_per_prompt_cap(rule: RuleInfo, params: dict[str, Any], spec_value: int) -> int | None:
    """The most pairs the rule takes from one prompt (None: no cap besides the pairs it has)."""
    defaults = rule.parameters()
    if "pairs_per_prompt" in defaults:
        return int(params.get("pairs_per_prompt", spec_value))
    if "max_pairs_per_prompt" in defaults:
        value = params.get("max_pairs_per_prompt", defaults["max_pairs_per_prompt"])
        return None if value is None else int(value)
    return None


def _pair_count(n_responses: int, cap: int | None) -> int:
    pairs = n_responses * (n_responses - 1) // 2
    return pairs if cap is None else min(cap, pairs)


def source_model_warnings(run: ActiveRun) -> list[str]:
    """A warning when source-model strengths are on with a rule they were measured to hurt.

    Why: the quickstart turns them on; a user who switches its method to, say, InfoMax should
    learn before the run that the combination was measured worse, and how to turn them off.
    """
    method = run.spec.acquisition.method
    if not run.spec.reward_model.source_models.enabled or method not in SOURCE_MODELS_HURT:
        return []
    return [
        f"rewardModel.sourceModels is on with acquisition.method {method}, which seeks close or "
        "uncertain pairs: the strengths make them closer and the combination measured worse "
        "than the rule alone (docs/benchmarks.md, 'Source-model strengths'); set "
        "spec.rewardModel.sourceModels.enabled=false for this rule"
    ]


def budget_warnings(run: ActiveRun, pool_size: int, n_held: int, reachable: int) -> list[str]:
    """One warning per budget the data cannot fill, with the shortfall and what to change."""
    spec = run.spec
    limits = [
        ("budget.maxAnnotations", spec.budget.max_annotations, "annotations"),
        ("budget.maxPairs", spec.budget.max_pairs, "dataset pairs"),
    ]
    why = (
        f"{pool_size} prompts are selected from after evaluation.heldoutFraction "
        f"{spec.evaluation.heldout_fraction:g} holds out {n_held}"
    )
    stop = "prompts exhausted"
    fix = "add prompts, lower evaluation.heldoutFraction, raise pairsPerPrompt"
    if spec.budget.max_rounds is not None and spec.budget.max_rounds * spec.batch_size < pool_size:
        stop = "round budget exhausted"
        fix = "raise budget.maxRounds, batchSize or pairsPerPrompt"
        why += (
            f", and budget.maxRounds {spec.budget.max_rounds} x batchSize {spec.batch_size} "
            f"reaches {spec.budget.max_rounds * spec.batch_size} of them"
        )
    out = []
    for name, limit, unit in limits:
        if limit is None or limit <= reachable:
            continue
        out.append(
            f"{name} {limit} cannot be reached: at most {reachable} pairs can be selected "
            f"({why}; pairsPerPrompt {spec.pairs_per_prompt}), so the run will stop "
            f"({stop}) after at most {reachable} {unit}, at least {limit - reachable} short; "
            f"{fix}, or lower the budget"
        )
    return out


def check_run_dir(run: ActiveRun, run_dir: Path, *, resume: bool) -> None:
    """Refuse to start over a directory holding a run; check a resume's checkpoint matches.

    Why: starting afresh would overwrite the run's manifest, checkpoints and dataset (labelled
    data paid for); resuming with another configuration would mix two runs in one dataset.
    Raises RunDirError (a fresh start over a run) or ResumeError (nothing or the wrong run to
    resume), both before anything is written.
    """
    from prefloop.engine.round_engine import ResumeError

    if resume:
        pointer = run_dir / CHECKPOINT_POINTER
        if not pointer.exists():
            raise ResumeError(f"{run_dir}: no checkpoint to resume from")
        state_file = pointer.parent / pointer.read_text().strip() / "state.json"
        try:
            found = json.loads(state_file.read_text()).get("fingerprint")
        except (OSError, ValueError) as e:
            raise ResumeError(f"{state_file}: unreadable checkpoint ({e})") from None
        if found != run.fingerprint():
            raise ResumeError(
                f"{run_dir}: the checkpoint was written by a different configuration "
                f"(fingerprint {found} != {run.fingerprint()}); {RESUME_HINT}"
            )
        return
    if not holds_run(run_dir):
        return
    status = read_status(run_dir)
    raise RunDirError(
        f"{run_dir} already holds {status.phase} run {status.name or '?'!r} (round "
        f"{status.round}, {status.annotations_used} annotations); nothing was written. Continue "
        "it with --resume (e.g. after raising spec.budget.maxAnnotations), write to another "
        "--output, or delete the directory to start over."
    )
