"""``prefloop bench label-efficiency|calibration|speed|live ...``: arguments and dispatch.

``prefloop.cli`` only adds this subparser and calls ``run_bench``; everything else lives here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench`` with its subcommands on the top-level subparsers."""
    bench = sub.add_parser("bench", help="label-efficiency and speed benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)

    le = bsub.add_parser("label-efficiency", help="learning curves + significance per method")
    le.add_argument("--data", type=Path, required=True, help="prompts with scored responses")
    le.add_argument("--eval-data", type=Path, default=None, help="separate evaluation file")
    le.add_argument("--methods", default="all", help="'all' or a comma list of rules")
    le.add_argument("--seeds", type=int, default=5)
    le.add_argument(
        "--first-seed", type=int, default=0, help="seeds are FIRST .. FIRST+SEEDS-1 (fresh seeds)"
    )
    le.add_argument(
        "--budget", type=int, default=256, help="judge calls and dataset pairs per run (each)"
    )
    le.add_argument(
        "--model-ranking",
        default=None,
        help="delta_qwen's models, strongest first, comma-separated (prior knowledge, free)",
    )
    le.add_argument(
        "--ranking-calls",
        type=int,
        default=None,
        help="without --model-ranking: judge calls delta_qwen spends ranking the models "
        "(default: a quarter of the budget)",
    )
    le.add_argument("--batch-size", type=int, default=64, help="prompts per round")
    le.add_argument("--heldout-fraction", type=float, default=0.2)
    le.add_argument("--max-length-tokens", type=int, default=256, help="MiniLM input length")
    le.add_argument("--num-heads", type=int, default=20, help="ensemble members")
    le.add_argument("--epochs-per-round", type=int, default=20)
    le.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache (default OUT/features)"
    )
    le.add_argument(
        "--policy",
        default=None,
        help="the policy of the policy:* methods (policy:adpo, policy:ae_dpo, policy:ae_borda, "
        "policy:us_dpo): a local causal-LM directory, or 'tiny' for a tiny random Llama",
    )
    le.add_argument(
        "--adpo-gamma", type=float, default=1.3, help="policy:adpo's confidence threshold"
    )
    le.add_argument("--out", type=Path, default=Path("bench-reports/label-efficiency"))
    le.add_argument(
        "--scope",
        choices=("batch", "pool", "both"),
        default="batch",
        help="acquisition.scope of every rule but random (both: each rule in both scopes); "
        "or name rule@pool in --methods",
    )
    le.add_argument(
        "--candidate-pool-size", type=int, default=0, help="pool scope: candidates (0: all)"
    )
    le.add_argument("--diversity", choices=("none", "clusters"), default="none")
    le.add_argument(
        "--params", default=None, help="per-method parameters: 'drts:beta=2,drts@pool:beta=1'"
    )
    le.add_argument(
        "--set",
        default=None,
        help="per-method manifest fields below spec.: "
        "'delta_ucb+src#w4:rewardModel.sourceModels.weight=4,...' (a #tag names a variant)",
    )

    ca = bsub.add_parser("calibration", help="does each reward head's sigma predict its error")
    ca.add_argument("--data", type=Path, required=True, help="prompts with scored responses")
    ca.add_argument(
        "--variant",
        action="append",
        default=None,
        help="a head kind, or NAME:PATH=VALUE;PATH=VALUE with paths below spec. (repeatable; "
        "default: ensemble, epinet, bgpm)",
    )
    ca.add_argument("--labels", default="32,64,128,256", help="label counts to evaluate at")
    ca.add_argument("--folds", type=int, default=4, help="cross-validation folds over prompts")
    ca.add_argument("--seeds", type=int, default=1)
    ca.add_argument("--batch-size", type=int, default=64, help="prompts per training round")
    ca.add_argument("--max-length-tokens", type=int, default=256, help="MiniLM input length")
    ca.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache (default OUT/features)"
    )
    ca.add_argument("--out", type=Path, default=Path("bench-reports/calibration"))

    sp = bsub.add_parser("speed", help="acquisition / scoring / training throughput")
    sp.add_argument("--prompts", default="1000,10000,100000", help="comma list of P")
    sp.add_argument("--responses", default="16,32", help="comma list of N")
    sp.add_argument("--methods", default="all")
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--batch-rule-cap", type=int, default=10_000, help="max P for batch rules")
    sp.add_argument("--scoring-texts", type=int, default=256, help="real texts for MiniLM")
    sp.add_argument("--data", type=Path, default=None, help="texts for the embedder timing")
    sp.add_argument(
        "--against-floor",
        action="store_true",
        help="also time each rule's N x N pair-score matrix (its floor) and report the ratio",
    )
    sp.add_argument(
        "--acquisition-only", action="store_true", help="skip the embedder / head timings"
    )
    sp.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time the rules by wall clock or by process CPU time (steadier on a shared machine)",
    )
    sp.add_argument(
        "--pool-rules",
        default="random,delta_ucb,drts",
        help="rules whose pool-scope round (rule + prompt ranking) is timed; '' skips it",
    )
    sp.add_argument("--out", type=Path, default=Path("bench-reports/speed"))

    lv = bsub.add_parser("live", help="HTTP client throughput against a fixed-latency fake server")
    lv.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    lv.add_argument("--latency-ms", type=float, default=50.0, help="the fake server's latency")
    lv.add_argument("--requests", type=int, default=4096, help="timed requests per shape")
    lv.add_argument("--warmup", type=int, default=128, help="untimed requests per shape first")
    lv.add_argument(
        "--check", action="store_true", help="exit 1 unless both shapes reach 0.9 x C / L"
    )
    lv.add_argument("--out", type=Path, default=Path("bench-reports/live"))


def _ints(text: str, name: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"prefloop bench: {name} must be a comma list of integers, got {text!r}"
        ) from None
    if not vals or min(vals) < 2:
        raise SystemExit(f"prefloop bench: {name} values must be >= 2, got {text!r}")
    return vals


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen bench and write its report; returns the exit status."""
    console = Console(stderr=True)
    if args.bench_command == "label-efficiency":
        from prefloop.bench.label_efficiency import (
            LabelEfficiencyConfig,
            resolve_methods,
            run_label_efficiency,
        )
        from prefloop.bench.report import write_report
        from prefloop.bench.scope_options import (
            parse_method_overrides,
            parse_method_params,
            with_scope,
        )

        cfg = LabelEfficiencyConfig(
            data=args.data,
            out=args.out,
            methods=with_scope(resolve_methods(args.methods), args.scope),
            seeds=args.seeds,
            first_seed=args.first_seed,
            budget=args.budget,
            batch_size=args.batch_size,
            heldout_fraction=args.heldout_fraction,
            eval_data=args.eval_data,
            cache_dir=args.cache_dir,
            max_length_tokens=args.max_length_tokens,
            num_heads=args.num_heads,
            epochs_per_round=args.epochs_per_round,
            model_ranking=[m.strip() for m in args.model_ranking.split(",") if m.strip()]
            if args.model_ranking
            else None,
            ranking_calls=args.ranking_calls,
            candidate_pool_size=args.candidate_pool_size,
            diversity=args.diversity,
            method_params=parse_method_params(args.params),
            method_overrides=parse_method_overrides(args.set),
            policy=args.policy,
            adpo_gamma=args.adpo_gamma,
        )
        points = run_label_efficiency(cfg, console=console)
        notes = [
            f"data `{cfg.data}`, evaluation on "
            + (
                f"`{cfg.eval_data}`"
                if cfg.eval_data
                else f"a {cfg.heldout_fraction:.0%} held-out split"
            )
            + f"; {cfg.seeds} seeds; budget {cfg.budget} judge calls and {cfg.budget} pairs per "
            f"run; batch {cfg.batch_size} prompts/round",
            "stored-score oracle (deterministic); all methods of a seed see the same shuffle",
            "delta_qwen's model ranking: "
            + (
                "given (--model-ranking)"
                if cfg.model_ranking
                else f"bought with {cfg.delta_qwen_ranking_calls} judge calls on random pairs "
                "of its training prompts (counted as its judge calls)"
            ),
            "rule@pool: acquisition.scope pool, candidatePoolSize "
            f"{cfg.candidate_pool_size or 'all'}, diversity {cfg.diversity}; random in batch "
            "scope",
            "bgpm_* rules run with the BGPM head (round 0: warm-up on random seed labels); every "
            "other rule with the anchored ensemble",
            *(
                [
                    f"policy:* methods: the rule with a policy in the loop (`{cfg.policy}`, DPO "
                    "steps each round; held-out accuracy = implicit-reward pairwise accuracy); "
                    f"policy:adpo gamma {cfg.adpo_gamma}"
                ]
                if cfg.policy_dir is not None
                else []
            ),
            "p-values: paired Wilcoxon signed-rank vs random over seeds, Holm per (metric, test);"
            " final/AUC two-sided, half- and third-budget one-sided (value at 1/2 or 1/3 of"
            " Random's annotations > Random's final value)",
        ]
        files = write_report(points, cfg.out, notes)
        console.print(f"report: {files['summary_md']}")
        return 0
    if args.bench_command == "calibration":
        return run_calibration_bench(args, console)
    if args.bench_command == "speed":
        from prefloop.bench.speed import SpeedConfig, run_speed

        scfg = SpeedConfig(
            prompts=_ints(args.prompts, "--prompts"),
            responses=_ints(args.responses, "--responses"),
            methods=args.methods,
            repeats=args.repeats,
            batch_rule_cap=args.batch_rule_cap,
            scoring_texts=args.scoring_texts,
            data=args.data,
            out=args.out,
            against_floor=args.against_floor,
            acquisition_only=args.acquisition_only,
            clock=args.clock,
            pool_rules=args.pool_rules,
        )
        md = run_speed(scfg, console=console)
        console.print(f"report: {md}")
        return 0
    if args.bench_command == "live":
        from prefloop.bench.live import LiveBenchConfig, render_markdown, run_live_bench

        try:
            rows = run_live_bench(
                LiveBenchConfig(
                    concurrency=args.concurrency,
                    latency_ms=args.latency_ms,
                    requests=args.requests,
                    warmup=args.warmup,
                    out=args.out,
                )
            )
        except ValueError as exc:
            raise SystemExit(f"prefloop bench live: {exc}") from None
        print(render_markdown(rows), end="")
        console.print(f"report: {args.out / 'live.md'}")
        return 1 if args.check and not all(r.meets_bar for r in rows) else 0
    return 1


def run_calibration_bench(args: argparse.Namespace, console: Console) -> int:
    """``prefloop bench calibration``: train every head variant per fold, write the report."""
    from prefloop.bench.calibration import (
        CalibrationConfig,
        CalibrationConfigError,
        parse_variant,
        run_calibration,
        write_calibration_report,
    )

    try:
        cfg = CalibrationConfig(
            data=args.data,
            out=args.out,
            variants=[parse_variant(v) for v in (args.variant or ["ensemble", "epinet", "bgpm"])],
            labels=_ints(args.labels, "--labels"),
            folds=args.folds,
            seeds=args.seeds,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
            max_length_tokens=args.max_length_tokens,
        )
        rows, bins = run_calibration(cfg, console)
    except CalibrationConfigError as exc:
        raise SystemExit(f"prefloop bench calibration: {exc}") from None
    notes = [
        f"data `{cfg.data}`; {cfg.folds}-fold cross-validation over prompts x {cfg.seeds} "
        f"seed(s); one random judged pair per training prompt, rounds of {cfg.batch_size} "
        "prompts, trained as the loop trains (replay, anchor schedule, steps per round)",
        "accuracy / nll / ece: held-out pairs with differing judge scores; nll and ece use the "
        "predictive probability mean_s sigmoid(logit_s); rho: Spearman of sigma vs |error|",
    ]
    files = write_calibration_report(rows, bins, cfg.out, notes)
    console.print(f"report: {files['summary_md']}")
    return 0
