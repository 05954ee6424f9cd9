"""Random vs DeltaUCB vs DRTS on the shipped AlpacaEval dev set, same annotation budget.

Reports, per method and seed: held-out pairwise accuracy of the reward model, mean judge-score
gap (chosen - rejected) of the selected pairs, and seconds per round split across the five
steps. Usage: ``python benchmarks/core_loop.py [--seeds 3] [--budget 256] [--out DIR]``.
The features are embedded once into a shared cache, so only the first run pays for MiniLM.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rich.console import Console

from prefloop.engine.runner import execute
from prefloop.spec import load_activerun

REPO = Path(__file__).resolve().parents[1]
STEPS = ("generation", "reward", "acquisition", "judge", "training", "evaluation")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--methods", default="random,delta_ucb,drts")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-core")
    ap.add_argument("--cache", type=Path, default=None, help="shared feature-cache directory")
    args = ap.parse_args()
    console = Console(stderr=True, quiet=True)
    results = []
    for method in args.methods.split(","):
        for seed in range(args.seeds):
            run = load_activerun(
                REPO / "examples" / "quickstart.yaml",
                [
                    f"metadata.name=core-{method.replace('_', '-')}-{seed}",
                    "spec.prompts.path=data/alpacaeval/dev.jsonl",
                    f"spec.seed={seed}",
                    "spec.batchSize=64",
                    f"spec.acquisition.method={method}",
                    "spec.acquisition.params={}",
                    f"spec.budget.maxAnnotations={args.budget}",
                    f"spec.rewardModel.embedder.cacheDir={args.cache or args.out / 'features'}",
                ],
            )
            res = execute(run, manifest_dir=REPO, output=str(args.out / run.metadata.name),
                          console=console)
            m = res.state.metrics
            row = {
                "method": method,
                "seed": seed,
                "annotations": res.state.annotations_used,
                "heldout_accuracy": m[-1]["heldout_accuracy"],
                "mean_score_gap": statistics.fmean(x["mean_score_gap"] for x in m),
                "rounds": len(m),
                **{f"{s}_s": statistics.fmean(x[f"{s}_seconds"] for x in m[1:] or m) for s in STEPS},
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
