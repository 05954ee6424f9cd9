"""Tiny Llama models and a byte-level BPE tokenizer built from a config, offline
(:mod:`prefloop.posttrain.tiny_lm`, re-exported here), and tiny runs for the tests.

Shared by the tests that train on a run's output (tests/engine/test_run_dataset_training.py,
tests/posttrain, tests/trainer/test_policy*.py): no download, no weights from the Hub. Also makes
the one-round run directory those tests read (the shrunk quickstart, real MiniLM embedder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefloop.posttrain.tiny_lm import (  # noqa: F401  (the tests import them from here)
    CHAT_TEMPLATE,
    save_tiny_causal_lm,
    tiny_config,
    tiny_tokenizer,
)


def pair_texts(rows: list[dict[str, Any]]) -> list[str]:
    """Every message text of conversational preference rows (to train the tokenizer on)."""
    return [m["content"] for r in rows for col in ("prompt", "chosen", "rejected") for m in r[col]]


def make_tiny_run(repo_root: Path, out: Path, feature_cache_dir: Path, *extra: str) -> Path:
    """One round of the shrunk quickstart (DRTS, 8 prompts, seed 3) written to ``out``."""
    from prefloop.cli import main

    args = ["run", str(repo_root / "examples" / "quickstart.yaml"), "--output", str(out)]
    overrides = [
        "spec.prompts.limit=40",
        "spec.evaluation.shadowRandom=false",
        "spec.batchSize=8",
        "spec.rewardModel.embedder.maxLengthTokens=64",
        f"spec.rewardModel.embedder.cacheDir={feature_cache_dir}",
        "spec.rewardModel.head.numHeads=4",
        "spec.trainer.epochsPerRound=2",
        "spec.acquisition.method=drts",
        "spec.seed=3",
        "spec.budget.maxRounds=1",
        "spec.budget.maxAnnotations=null",
        *extra,
    ]
    for override in overrides:
        args += ["--set", override]
    previous = os.umask(0o022)
    try:
        assert main(args) == 0
    finally:
        os.umask(previous)
    return out


def policy_overrides(model_dir: Path, rounds: int, method: str = "adpo") -> list[str]:
    """`--set` overrides: the quickstart shrunk to a ``rounds``-round policy-in-the-loop run
    (20 prompts, 3 per round, seed 5, the tiny policy in ``model_dir``); ADPO keeps its
    pseudo-labels in the dataset."""
    params = "{gamma: 0.05, pairing: random}" if method == "adpo" else "{}"
    return [
        "spec.prompts.limit=20",
        "spec.evaluation.shadowRandom=false",
        "spec.batchSize=3",
        "spec.seed=5",
        "spec.trainer.kind=policy",
        f"spec.trainer.policy.model={model_dir}",
        "spec.trainer.policy.maxLength=384",
        "spec.trainer.policy.learningRate=0.001",
        "spec.trainer.policy.batchSize=4",
        "spec.trainer.policy.stepsPerRound=2",
        f"spec.acquisition.method={method}",
        f"spec.acquisition.params={params}",
        "spec.budget.maxAnnotations=null",
        f"spec.budget.maxRounds={rounds}",
        "spec.output.includePseudoLabels=true",
    ]


def online_policy_overrides(
    prompts: Path, samplers: tuple[str, ...], judge_dir: Path, model_dir: Path, new_tokens: int
) -> list[str]:
    """Online AE-Borda with a policy in the loop: every pool entry samples from the policy being
    trained (``backend: policy``), a reward-model judge, rounds of 2 prompts, no budget."""
    models = ", ".join(f"{{name: {n}, backend: policy}}" for n in samplers)
    return [
        f"spec.prompts.path={prompts}",
        "spec.batchSize=2",
        "spec.seed=7",
        "spec.evaluation.heldoutFraction=0",
        "spec.responses.source=models",
        f"spec.responses.models=[{models}]",
        f"spec.responses.maxNewTokens={new_tokens}",
        "spec.judge.kind=reward_model",
        "spec.evaluation.shadowRandom=false",
        f"spec.judge.rewardModel={{path: {judge_dir}}}",
        "spec.judge.mode=deterministic",
        "spec.trainer.kind=policy",
        f"spec.trainer.policy.model={model_dir}",
        "spec.trainer.policy.learningRate=0.05",
        "spec.trainer.policy.stepsPerRound=3",
        "spec.trainer.policy.batchSize=2",
        "spec.acquisition.method=ae_borda",
        "spec.budget.maxAnnotations=null",
    ]
