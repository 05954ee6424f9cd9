"""The label-efficiency bench: every method over the same shuffled prompts, per seed.

For each seed and acquisition rule the embedded loop runs with the stored-score oracle
(``judge.kind: oracle``, deterministic) on the same shuffled prompts - the shuffle and the
held-out split depend only on the seed - under the same two budgets (``--budget`` judge calls
and ``--budget`` pairs in the dataset), and after every round the bench records one point
``(method, seed, judge calls, pairs)`` with:

1. the loop's reward model on prompts it never saw: pairwise accuracy and per-prompt Spearman
   (the held-out split, or ``--eval-data``);
2. the quality of the dataset produced so far (rows of rounds <= r): mean judge score of the
   chosen responses, mean chosen-minus-rejected gap, fraction of labels agreeing with the scores;
3. the downstream proxy (``downstream.py``): a fresh Bradley-Terry MLP trained only on that
   dataset prefix, its held-out accuracy.

Rules with extra needs are configured automatically: ``bgpm_*`` run with the BGPM head (whose
round 0 is the warm-up on random seed labels), and ``delta_qwen`` gets its model ranking from
``--model-ranking`` or buys it with ``--ranking-calls`` judge calls on its own training prompts
(``paid_ranking.py``); those calls are its judge calls, its identity-labelled pairs its pairs.
``policy:<rule>`` (``policy:adpo``, ``policy:ae_dpo``, ``policy:ae_borda``, ``policy:us_dpo``)
runs the rule with a policy in the loop, ``--policy PATH`` or ``tiny`` (``policy_methods.py``).
Protocol after ActiveUltraFeedback (https://arxiv.org/abs/2603.09692) and ActiveRLHF's
many-seeds lesson (https://github.com/bkuen/active-rlhf).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from prefloop.acquisition import get_rule, rule_names
from prefloop.bench.downstream import ProbeConfig, downstream_accuracy
from prefloop.bench.paid_ranking import paid_model_ranking
from prefloop.bench.policy_methods import (
    PolicyMethodError,
    apply_policy,
    is_policy_method,
    method_slug,
    policy_rule,
    resolve_policy,
)
from prefloop.bench.scope_options import params_for, split_label, uses_source_models
from prefloop.data.records import PromptItem, ScoredBatch
from prefloop.engine.build import build_embedded_roles, build_judge, build_reward_model
from prefloop.engine.checkpoint import derive_seed
from prefloop.engine.local_roles import LocalRewardModel
from prefloop.engine.roles import RewardRole, RewardScores
from prefloop.engine.round_engine import split_prompts
from prefloop.engine.runner import execute
from prefloop.spec import ActiveRun, SpecError, apply_override, parse_activerun

BASE_MANIFEST: dict[str, Any] = {
    "apiVersion": "prefloop.dev/v1alpha1",
    "kind": "ActiveRun",
    "metadata": {"name": "bench"},
    "spec": {
        "seed": 0,
        "batchSize": 64,
        "pairsPerPrompt": 1,
        "prompts": {"path": "", "shuffle": True},
        "responses": {"source": "precomputed"},
        "rewardModel": {
            "embedder": {"kind": "minilm", "maxLengthTokens": 256},
            "head": {"kind": "ensemble", "numHeads": 20, "hiddenDim": 128},
        },
        "acquisition": {"method": "random", "params": {}},
        "judge": {"kind": "oracle", "mode": "deterministic"},
        "trainer": {"maxStepsPerRound": 100, "batchSize": 16, "epochsPerRound": 20},
        "budget": {"maxAnnotations": 256, "maxPairs": 256},
        "evaluation": {"heldoutFraction": 0.2},
        "output": {"dir": "runs/{name}", "keepCheckpoints": 1},
    },
}
"""The quickstart's configuration (examples/quickstart.yaml) with the bench's knobs exposed."""


class BenchConfigError(ValueError):
    """The bench was asked for something it cannot run (unknown method, bad sizes)."""


@dataclass
class LabelEfficiencyConfig:
    """What one label-efficiency bench runs."""

    data: Path
    out: Path
    methods: list[str]
    seeds: int = 5
    first_seed: int = 0
    """Seeds are ``first_seed .. first_seed + seeds - 1`` (a confirmation run on fresh seeds)."""
    budget: int = 256
    batch_size: int = 64
    heldout_fraction: float = 0.2
    eval_data: Path | None = None
    cache_dir: Path | None = None
    max_length_tokens: int = 256
    num_heads: int = 20
    epochs_per_round: int = 20
    max_steps_per_round: int = 100
    model_ranking: list[str] | None = None
    """DeltaQwen's ranking, strongest first (prior knowledge, costs no judge call); None = buy
    one with ``ranking_calls`` judge calls."""
    ranking_calls: int | None = None
    """Judge calls DeltaQwen spends on ranking the models; None = a quarter of the budget."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    candidate_pool_size: int = 0
    """``rule@pool`` methods: ``acquisition.candidatePoolSize`` (0 = every unlabelled prompt)."""
    diversity: str = "none"
    """``rule@pool`` methods: ``acquisition.diversity``."""
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per method label or rule: acquisition parameters (``--params``)."""
    method_overrides: dict[str, list[str]] = field(default_factory=dict)
    """Per method label: manifest fields ``PATH=VALUE`` below ``spec.`` (``--set``)."""
    policy: str | None = None
    """``--policy``: the policy of the ``policy:*`` methods, a local directory or ``tiny``."""
    adpo_gamma: float = 1.3
    """ADPO's confidence threshold for ``policy:adpo`` (on beta-scaled implicit rewards)."""
    policy_dir: Path | None = None
    """The resolved policy directory (set by :func:`run_label_efficiency`)."""

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.budget < 1 or self.batch_size < 1:
            raise BenchConfigError(
                f"seeds ({self.seeds}), budget ({self.budget}) and batch size "
                f"({self.batch_size}) must all be >= 1"
            )
        if self.first_seed < 0:
            raise BenchConfigError(f"--first-seed must be >= 0, got {self.first_seed}")
        if not 0 <= self.heldout_fraction < 1:
            raise BenchConfigError(
                f"heldout fraction must be in [0, 1), got {self.heldout_fraction}"
            )
        if self.eval_data is None and self.heldout_fraction == 0:
            raise BenchConfigError("with --heldout-fraction 0 give --eval-data to evaluate on")
        if not 1 <= self.delta_qwen_ranking_calls < self.budget and self.model_ranking is None:
            raise BenchConfigError(
                f"--ranking-calls must be in [1, budget) = [1, {self.budget}), got "
                f"{self.delta_qwen_ranking_calls}; or give --model-ranking"
            )

    @property
    def delta_qwen_ranking_calls(self) -> int:
        """Judge calls DeltaQwen pays for its ranking (0 with a given ranking)."""
        if self.model_ranking is not None:
            return 0
        return self.ranking_calls if self.ranking_calls is not None else max(1, self.budget // 4)

    @property
    def feature_dir(self) -> Path:
        return self.cache_dir or self.out / "features"


def resolve_methods(spec: str) -> list[str]:
    """``all`` (every registered rule) or a comma list, checked against the registry."""
    names = rule_names() if spec.strip() == "all" else [m.strip() for m in spec.split(",") if m]
    if not names:
        raise BenchConfigError("--methods: give 'all' or a comma-separated list of rules")
    for n in names:
        if is_policy_method(n):
            try:
                policy_rule(n)
            except PolicyMethodError as exc:
                raise BenchConfigError(str(exc)) from None
        else:
            get_rule(split_label(n)[0])  # raises AcquisitionError naming the registered rules
    return list(dict.fromkeys(names))


def build_run(
    cfg: LabelEfficiencyConfig,
    method: str,
    seed: int,
    params: dict[str, Any] | None = None,
    judge_calls_spent: int = 0,
) -> ActiveRun:
    """The manifest of one (method, seed) run: ``cfg.budget`` pairs and judge calls (less the
    ``judge_calls_spent`` before the loop, e.g. on DeltaQwen's ranking)."""
    data = copy.deepcopy(BASE_MANIFEST)
    s = data["spec"]
    label, (method, scope) = method, split_label(method)
    data["metadata"]["name"] = f"bench-{method_slug(label).replace('@', '-')}-s{seed}"
    s["seed"] = seed
    s["batchSize"] = cfg.batch_size
    s["prompts"]["path"] = str(Path(cfg.data).resolve())
    s["rewardModel"]["embedder"]["maxLengthTokens"] = cfg.max_length_tokens
    s["rewardModel"]["embedder"]["cacheDir"] = str(cfg.feature_dir.resolve())
    s["rewardModel"]["head"]["numHeads"] = cfg.num_heads
    if method.startswith("bgpm_"):
        s["rewardModel"]["head"] = {"kind": "bgpm"}
    s["rewardModel"]["sourceModels"] = {"enabled": uses_source_models(label)}
    s["acquisition"]["method"] = method
    s["acquisition"]["params"] = {**params_for(label, cfg.method_params), **(params or {})}
    if scope == "pool":
        s["acquisition"]["scope"] = "pool"
        s["acquisition"]["candidatePoolSize"] = cfg.candidate_pool_size
        s["acquisition"]["diversity"] = cfg.diversity
    s["trainer"]["epochsPerRound"] = cfg.epochs_per_round
    s["trainer"]["maxStepsPerRound"] = cfg.max_steps_per_round
    s["budget"]["maxAnnotations"] = cfg.budget - judge_calls_spent
    s["budget"]["maxPairs"] = cfg.budget
    s["evaluation"]["heldoutFraction"] = 0.0 if cfg.eval_data else cfg.heldout_fraction
    for assignment in cfg.method_overrides.get(label, []):
        try:
            apply_override(data, f"spec.{assignment}")
        except SpecError as exc:
            raise BenchConfigError(f"--set {label}:{assignment}: {exc}") from None
    if is_policy_method(method):
        if cfg.policy_dir is None:
            raise BenchConfigError(f"{method}: no policy resolved (give --policy PATH or tiny)")
        apply_policy(s, method, cfg.policy_dir, cfg.adpo_gamma)
    try:
        return parse_activerun(data, source=f"bench:{method}:s{seed}")
    except SpecError as exc:
        if label not in cfg.method_overrides:
            raise
        sets = ",".join(cfg.method_overrides[label])
        raise BenchConfigError(f"--set {label}:{sets}: {exc}") from None


class EvalOnItems:
    """Reward role that scores like ``inner`` but evaluates on a fixed set (``--eval-data``)."""

    def __init__(self, inner: RewardRole, items: list[PromptItem]) -> None:
        self.inner = inner
        self.items = items

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        return self.inner.score(items, mask)

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        return self.inner.evaluate(self.items)


class RecordingReward:
    """Reward role that scores like ``inner`` and keeps each call's sigma spread, in order.

    Why: whether an uncertainty rule still has something to act on after a few rounds (the
    "uncertainty collapse" question of issue 12) is read from the sigma it was given per round.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sigma: list[tuple[float, float]] = []  # (mean sigma, CV of sigma) per call

    def score(self, items: list[PromptItem], mask: np.ndarray) -> RewardScores:
        out: RewardScores = self.inner.score(items, mask)
        std = np.asarray(out.std)[mask]
        mean = float(std.mean()) if std.size else float("nan")
        self.sigma.append((mean, float(std.std() / mean) if mean > 0 else float("nan")))
        return out

    def evaluate(self, items: list[PromptItem]) -> dict[str, float]:
        result: dict[str, float] = self.inner.evaluate(items)
        return result


NEAR_TIE_SHARE_OF_RANGE = 0.05
"""A selected pair is a near-tie when its judge-score gap is below 5% of the data's score range."""


def round_selection(
    rows: list[dict[str, Any]], score_range: float, num_models: int
) -> dict[str, float]:
    """What one round picked: mean judge-score gap, near-tie share, model diversity.

    Why: the diagnostics of issue 12 for rules that lose to Random: a rule that spends labels on
    near-ties (pairs the judge barely separates) or on the same few models teaches little.
    Diversity is the number of distinct models among the picked responses over the most there
    could be (two per pair, at most the models seen in the round).
    """
    nan = float("nan")
    scored = [
        (
            float(r["chosen_score"]),
            float(r["rejected_score"]),
            r["chosen_model"],
            r["rejected_model"],
        )
        for r in rows
        if r.get("chosen_score") is not None and r.get("rejected_score") is not None
    ]
    if not scored:
        return {"round_score_gap": nan, "round_near_tie_share": nan, "round_model_diversity": nan}
    gap = np.abs(np.array([a - b for a, b, _, _ in scored]))
    models = [m for _, _, a, b in scored for m in (a, b)]
    return {
        "round_score_gap": float(gap.mean()),
        "round_near_tie_share": float((gap < NEAR_TIE_SHARE_OF_RANGE * score_range).mean()),
        "round_model_diversity": len(set(models)) / max(1, min(len(models), num_models)),
    }


def dataset_quality(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean chosen score, mean chosen-minus-rejected gap, label agreement of dataset rows."""
    scored = [
        (float(r["chosen_score"]), float(r["rejected_score"]))
        for r in rows
        if r.get("chosen_score") is not None and r.get("rejected_score") is not None
    ]
    if not scored:
        nan = float("nan")
        return {"mean_chosen_score": nan, "mean_score_gap": nan, "label_agreement": nan}
    c = np.array([a for a, _ in scored])
    rj = np.array([b for _, b in scored])
    return {
        "mean_chosen_score": float(c.mean()),
        "mean_score_gap": float((c - rj).mean()),
        "label_agreement": float((c >= rj).mean()),
    }


def _row_features(
    model: LocalRewardModel, rows: list[dict[str, Any]], by_id: dict[str, PromptItem]
) -> tuple[np.ndarray, np.ndarray]:
    prompts = [by_id[r["prompt_id"]].prompt_text() for r in rows]
    chosen = model.cache.get_or_compute(
        prompts, [r["chosen"][0]["content"] for r in rows], model.embedder
    )
    rejected = model.cache.get_or_compute(
        prompts, [r["rejected"][0]["content"] for r in rows], model.embedder
    )
    return chosen, rejected


STEP_COLUMNS = ("generation", "reward", "acquisition", "judge", "training", "evaluation")


def run_one(
    cfg: LabelEfficiencyConfig,
    method: str,
    seed: int,
    items: list[PromptItem],
    eval_items: list[PromptItem] | None,
    console: Console,
) -> list[dict[str, Any]]:
    """Run one (method, seed) loop and return its points, one per round."""
    run = build_run(cfg, method, seed)
    pool, heldout = split_prompts(run, items)
    paid_calls = 0
    if split_label(method)[0] == "delta_qwen":
        ranking = cfg.model_ranking
        if ranking is None:
            paid_calls = cfg.delta_qwen_ranking_calls
            ranking = paid_model_ranking(
                pool,
                build_judge(run),
                run_name=run.metadata.name,
                n_calls=paid_calls,
                seed=derive_seed(seed, -1, "model-ranking"),
            )
        run = build_run(cfg, method, seed, {"model_ranking": list(ranking)}, paid_calls)
    run_dir = cfg.out / "runs" / f"{method.replace(':', '-')}-s{seed}"
    roles, loop_model, _ = build_embedded_roles(run, run_dir, None)
    # the downstream probe reads MiniLM features of the dataset, whatever the loop's model
    model = (
        loop_model
        if isinstance(loop_model, LocalRewardModel)
        else build_reward_model(run, run_dir, None)
    )
    evaluation_items = eval_items if eval_items is not None else heldout
    if eval_items is not None:
        roles.reward = EvalOnItems(roles.reward, eval_items)
    recorder = RecordingReward(roles.reward)
    roles.reward = recorder
    result = execute(run, output=str(run_dir), roles=roles, console=console)
    all_scores = ScoredBatch.from_items(pool).judge_scores
    score_range = float(np.nanmax(all_scores) - np.nanmin(all_scores))
    num_models = len({resp.model for it in pool for resp in it.responses})
    batch = ScoredBatch.from_items(evaluation_items)
    eval_feats = model.features(list(evaluation_items), batch.mask)
    by_id = {it.prompt_id: it for it in pool}
    points: list[dict[str, Any]] = []
    for m in result.state.metrics:
        r = int(m["round"])
        prefix = [row for row in result.rows if int(row["round"]) < r]
        point: dict[str, Any] = {
            "method": method,
            "seed": seed,
            "round": r,
            "annotations": paid_calls + int(m["annotations_used"]),
            "pairs": int(m["pairs_used"]),
            "ranking_calls": paid_calls,
            "queries": int(m["pairs_judged"]),
            "pseudo_labels": int(m["pairs_self_labelled"]),
            "heldout_accuracy": float(m.get("heldout_accuracy", float("nan"))),
            "heldout_spearman": float(m.get("heldout_spearman", float("nan"))),
            **dataset_quality(prefix),
            **round_selection(
                [row for row in result.rows if int(row["round"]) == r - 1], score_range, num_models
            ),
            "round_sigma_mean": recorder.sigma[r - 1][0]
            if r <= len(recorder.sigma)
            else float("nan"),
            "round_sigma_cv": recorder.sigma[r - 1][1]
            if r <= len(recorder.sigma)
            else float("nan"),
        }
        if prefix:
            chosen, rejected = _row_features(model, prefix, by_id)
            ds = downstream_accuracy(
                chosen,
                rejected,
                eval_feats,
                batch.judge_scores,
                batch.mask,
                seed=derive_seed(seed, r, "downstream"),
                config=cfg.probe,
            )
            point["downstream_accuracy"] = ds["accuracy"]
            point["downstream_decisive_accuracy"] = ds["decisive_accuracy"]
            point["downstream_spearman"] = ds["spearman"]
        else:
            point["downstream_accuracy"] = point["downstream_spearman"] = float("nan")
            point["downstream_decisive_accuracy"] = float("nan")
        for step in STEP_COLUMNS:
            point[f"{step}_seconds"] = float(m.get(f"{step}_seconds", 0.0))
        point["embed_seconds"] = float(m.get("embed_seconds", 0.0))
        point["head_seconds"] = float(m.get("head_seconds", 0.0))
        point["train_embed_seconds"] = float(m.get("train_embed_seconds", 0.0))
        point["round_seconds"] = float(m["round_seconds"])
        points.append(point)
    return points


def run_label_efficiency(
    cfg: LabelEfficiencyConfig,
    *,
    console: Console | None = None,
    on_run: Callable[[str, int, list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every (seed, method) run, with a rich progress bar; returns all points.

    Round numbering: the metrics row of round r (1-based) is written after r rounds, so the
    dataset prefix of a point is every row with ``round < r`` (rows count rounds from 0).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from prefloop.data.readers import load_prompt_items

    console = console or Console(stderr=True)
    quiet = Console(stderr=True, quiet=True)
    items = load_prompt_items(cfg.data)
    eval_items = load_prompt_items(cfg.eval_data) if cfg.eval_data else None
    cfg.out.mkdir(parents=True, exist_ok=True)
    if any(is_policy_method(m) for m in cfg.methods) and cfg.policy_dir is None:
        texts = [t for it in items for t in (it.prompt_text(), *(r.text for r in it.responses))]
        try:
            cfg.policy_dir = resolve_policy(cfg.policy, texts, cfg.out)
        except PolicyMethodError as exc:
            raise BenchConfigError(str(exc)) from None
    points: list[dict[str, Any]] = []
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("label-efficiency", total=cfg.seeds * len(cfg.methods))
        for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
            for method in cfg.methods:
                progress.update(task, description=f"seed {seed} [magenta]{method}[/]")
                pts = run_one(cfg, method, seed, items, eval_items, quiet)
                points.extend(pts)
                if pts:
                    last = pts[-1]
                    progress.console.print(
                        f"seed {seed} {method:14s} {last['annotations']:>5} annotations: "
                        f"held-out acc {last['heldout_accuracy']:.3f}, "
                        f"downstream {last['downstream_accuracy']:.3f}"
                    )
                if on_run is not None:
                    on_run(method, seed, pts)
                progress.advance(task)
    return points
