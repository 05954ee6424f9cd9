"""Issue 7 item 5: byte-identical texts are never paired, for every registered rule.

Each prompt of the pool has three byte-identical answers from three models next to two distinct
ones, and one prompt has nothing but identical answers. Unguarded, the rules pair the copies (a
judge call that can only say "tie"); the engine masks every repeated text before acquisition and
reports how many it masked and how many prompts had no distinct pair left.

One round per rule through the real round engine and embedded roles (MiniLM, the stored-score
oracle, the trainer); the roles are built once per head kind, the rule changes per test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _loop import write_pool

from prefloop.acquisition import get_rule, rule_names
from prefloop.data.readers import load_prompt_items
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.checkpoint import RunState
from prefloop.engine.round_engine import Roles, RoundEngine
from prefloop.spec import ActiveRun, load_activerun

pytestmark = pytest.mark.model

MODELS = ("m0", "m1", "m2", "m3", "m4")
N_PROMPTS = 6
ALL_SAME = f"dup-{N_PROMPTS - 1}"


def _prompt(p: int, texts: list[str], scores: list[float]) -> dict[str, Any]:
    responses = [
        {"model": m, "text": t, "score": s} for m, t, s in zip(MODELS, texts, scores, strict=True)
    ]
    return {"prompt_id": f"dup-{p}", "prompt": f"Question number {p}?", "responses": responses}


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prompts = []
    for p in range(N_PROMPTS - 1):
        texts = [f"Answer A to question {p}."] * 3 + [f"Answer B {p}.", f"Answer C {p}!"]
        prompts.append(_prompt(p, texts, [0.6, 0.6, 0.6, 0.95 - 0.05 * p, 0.2]))
    prompts.append(_prompt(N_PROMPTS - 1, ["The same answer."] * 5, [0.5] * 5))
    return write_pool(tmp_path_factory.mktemp("dups") / "dups.jsonl", prompts)


def _run(repo_root: Path, pool_file: Path, cache: Path, method: str, head: str) -> ActiveRun:
    params = "{}"
    if method == "delta_qwen":
        params = f"{{model_ranking: [{', '.join(MODELS)}]}}"
    elif method in ("maxmin", "ultrafeedback"):
        params = "{by: judge}"
    return load_activerun(
        repo_root / "examples" / "quickstart.yaml",
        [
            f"spec.prompts.path={pool_file}",
            f"spec.batchSize={N_PROMPTS}",
            "spec.evaluation.heldoutFraction=0.0",
            "spec.rewardModel.embedder.maxLengthTokens=32",
            f"spec.rewardModel.embedder.cacheDir={cache}",
            f"spec.rewardModel.head.kind={head}",
            "spec.rewardModel.head.numHeads=4",
            "spec.trainer.epochsPerRound=1",
            "spec.budget.maxAnnotations=null",
            f"spec.acquisition.method={method}",
            f"spec.acquisition.params={params}",
        ],
    )


@pytest.fixture(scope="module")
def roles_by_head(
    repo_root: Path, pool_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Roles]:
    cache = tmp_path_factory.mktemp("dup-features")
    out: dict[str, Roles] = {}
    for head, method in (("ensemble", "random"), ("bgpm", "bgpm_mv")):
        run = _run(repo_root, pool_file, cache, method, head)
        out[head], _, _ = build_embedded_roles(run, tmp_path_factory.mktemp(head), None)
    return out


@pytest.mark.parametrize("method", rule_names())
def test_identical_texts_are_never_paired(
    method: str,
    repo_root: Path,
    pool_file: Path,
    tmp_path: Path,
    roles_by_head: dict[str, Roles],
) -> None:
    head = "bgpm" if "pref" in get_rule(method).needs else "ensemble"
    run = _run(repo_root, pool_file, tmp_path / "features", method, head)
    items = load_prompt_items(pool_file)
    engine = RoundEngine(run, roles_by_head[head], tmp_path, items, [])
    state = RunState(run.fingerprint(), round=1)  # after the BGPM warm-up round
    rows = engine.run_one_round(state)
    (metrics,) = state.metrics
    assert metrics["acquisition_method"] == method
    assert metrics["pairs_selected"] > 0 and rows
    for row in rows:
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"], row["prompt_id"]
        assert row["prompt_id"] != ALL_SAME
    assert metrics["identical_responses_masked"] == 2 * (N_PROMPTS - 1) + 4
    assert metrics["prompts_without_distinct_pair"] == 1
    assert metrics["ties"] == 0
