"""The policy in the loop (``trainer.kind: policy``) on a tiny Llama built from a config.

AE-DPO and AE-Borda scores on the policy's MC-dropout rewards equal values computed by hand
(token by token) for a fixed model and fixed dropout masks; a 3-round ADPO run completes
embedded, counts only judge queries against the budget and reports pseudo-labels apart, and a
run stopped after round 2 and resumed, or SIGKILLed in round 2 and resumed with ``--resume``,
gives the uninterrupted dataset.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _run_process import kill_after_round, run_command
from _tiny_llama import policy_overrides, save_tiny_causal_lm
from prefloop.acquisition import AcquisitionInput, select
from prefloop.cli import main
from prefloop.data.run_dataset import dataset_file
from prefloop.data.writers import read_dataset
from prefloop.posttrain.logprobs import batch_tensors, encode_pair
from prefloop.reward.policy import dropout_masks, mc_dropout_logprobs, served_rewards
from prefloop.spec_posttrain import PolicySpec
from prefloop.trainer.policy import PolicyModel

PROMPTS = ["name a colour", "count to three"]
RESPONSES = [["red", "blue is nice", "green!"], ["one two three", "1 2 3", "three"]]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = PROMPTS + [r for rs in RESPONSES for r in rs] + ["the quick brown fox"] * 3
    return save_tiny_causal_lm(tmp_path_factory.mktemp("policy-lm"), texts, seed=1)


def _hand_logprob(model: Any, tokenizer: Any, prompt: str, text: str, mask: torch.Tensor) -> float:
    """log pi(text | prompt) token by token with ``mask`` on the last hidden state."""
    ids, n_prompt = encode_pair(tokenizer, prompt, text)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        logits = model.get_output_embeddings()(out.hidden_states[-1][0] * mask[: len(ids)])
    total = 0.0
    for t in range(n_prompt, len(ids)):
        total += float(torch.log_softmax(logits[t - 1].double(), dim=-1)[ids[t]])
    return total


def test_ae_dpo_and_ae_borda_scores_equal_hand_computed_values(tiny_dir: Path) -> None:
    spec = PolicySpec(model=str(tiny_dir), dropout=0.3, mc_samples=3, beta=0.1)
    model = PolicyModel(spec, str(tiny_dir), seed=0)
    prompts = [p for p, rs in zip(PROMPTS, RESPONSES, strict=True) for _ in rs]
    texts = [r for rs in RESPONSES for r in rs]
    ids, attention, response = batch_tensors(model.tokenizer, prompts, texts)
    hidden = int(model.policy.config.hidden_size)
    masks = dropout_masks((*ids.shape, hidden), 0.3, 3, torch.Generator().manual_seed(7))
    samples = mc_dropout_logprobs(model.policy, ids, attention, response, masks).T.numpy()
    ones = torch.ones((1, *ids.shape, hidden))
    ref = mc_dropout_logprobs(model.reference, ids, attention, response, ones)[0].numpy()
    mean, std, _ = served_rewards(samples, ref, spec.beta)

    hand = np.array(
        [
            [_hand_logprob(model.policy, model.tokenizer, p, t, masks[s, b]) for s in range(3)]
            for b, (p, t) in enumerate(zip(prompts, texts, strict=True))
        ]
    )
    hand_ref = [
        _hand_logprob(model.reference, model.tokenizer, p, t, torch.ones(ids.shape[1], hidden))
        for p, t in zip(prompts, texts, strict=True)
    ]
    np.testing.assert_allclose(samples, hand, atol=1e-4)
    r = [0.1 * (float(np.mean(hand[b])) - hand_ref[b]) for b in range(6)]
    s = [0.1 * float(np.std(hand[b], ddof=1)) for b in range(6)]
    assert min(s) > 0  # the masks make a real spread

    inputs = AcquisitionInput(
        mean=mean.reshape(2, 3), std=std.reshape(2, 3), mask=np.ones((2, 3), dtype=bool)
    )
    kappa = 2.0
    ae = select("ae_dpo", inputs, np.random.default_rng(0), max_pairs=2, max_pairs_per_prompt=3)
    for p, i, j, score in zip(ae.prompt_index, ae.first, ae.second, ae.score, strict=True):
        a, b = 3 * p + i, 3 * p + j
        upper = max(r[a] + kappa * s[a], r[b] + kappa * s[b])
        lower = max(r[a] - kappa * s[a], r[b] - kappa * s[b])
        assert score == pytest.approx(upper - lower, abs=1e-5)

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    borda = select("ae_borda", inputs, np.random.default_rng(0))
    for p, score in zip(borda.prompt_index, borda.score, strict=True):
        rows = [3 * p + k for k in range(3)]
        ucb = [
            np.mean(
                [sigmoid((r[k] + kappa * s[k]) - (r[m] - kappa * s[m])) for m in rows if m != k]
            )
            for k in rows
        ]
        lcb = [
            np.mean(
                [sigmoid((r[k] - kappa * s[k]) - (r[m] + kappa * s[m])) for m in rows if m != k]
            )
            for k in rows
        ]
        assert score == pytest.approx(max(ucb) - max(lcb), abs=1e-5)


def _run(repo_root: Path, out: Path, model_dir: Path, rounds: int, resume: bool = False) -> int:
    args = ["run", str(repo_root / "examples" / "quickstart.yaml"), "--output", str(out)]
    for o in policy_overrides(model_dir, rounds):
        args += ["--set", o]
    return main([*args, "--resume"] if resume else args)


@pytest.fixture(scope="module")
def full_run(repo_root: Path, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted 3-round ADPO run (the reference of the resume tests)."""
    full = tmp_path_factory.mktemp("policy-run") / "full"
    assert _run(repo_root, full, tiny_dir, 3) == 0
    return full


def test_policy_loop_runs_adpo_and_resumes_to_the_same_dataset(
    repo_root: Path, tiny_dir: Path, full_run: Path, tmp_path: Path
) -> None:
    metrics = [json.loads(line) for line in (full_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [1, 2, 3]
    assert [m["model_version"] for m in metrics] == [1, 2, 3]
    judged = sum(m["pairs_judged"] for m in metrics)
    pseudo = sum(m["pairs_self_labelled"] for m in metrics)
    assert judged > 0 and pseudo > 0  # gamma splits the pairs both ways
    assert metrics[-1]["annotations_used"] == judged  # the budget counts queries only
    for m in metrics:
        assert m["annotations_this_round"] == m["pairs_judged"]
        assert m["pairs_selected"] == m["pairs_judged"] + m["pairs_self_labelled"]
    rows = read_dataset(dataset_file(full_run))
    assert {r["label_source"] for r in rows} == {"judge", "pseudo"}
    for m in metrics:  # implicit-reward accuracy on the held-out prompts' pairs, every round
        assert 0 <= m["heldout_accuracy"] <= 1 and m["heldout_num_pairs"] > 0
    assert "heldout_accuracy" in (full_run / "metrics.csv").read_text().splitlines()[0]
    summary = json.loads((full_run / "summary.json").read_text())
    assert summary["final_heldout_accuracy"] == metrics[-1]["heldout_accuracy"]

    resumed = tmp_path / "resumed"
    assert _run(repo_root, resumed, tiny_dir, 2) == 0  # stopped after round 2's checkpoint
    assert _run(repo_root, resumed, tiny_dir, 3, resume=True) == 0  # a new process resumes
    assert read_dataset(dataset_file(resumed)) == rows


@pytest.mark.slow
def test_policy_run_sigkilled_after_a_checkpoint_resumes_to_the_same_dataset(
    repo_root: Path, tiny_dir: Path, full_run: Path, tmp_path: Path
) -> None:
    """`prefloop run` (a child process) SIGKILLed in round 2, then `--resume`: the dataset of
    the uninterrupted run, and every judged pair paid for once."""
    overrides = policy_overrides(tiny_dir, 3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    done = kill_after_round(run_command(repo_root, killed, overrides), killed, 1, env)
    assert 1 <= done < 3
    assert not dataset_file(killed).exists()

    resume = run_command(repo_root, killed, overrides, "--resume")
    subprocess.run(resume, check=True, env=env, capture_output=True)
    rows = read_dataset(dataset_file(killed))
    assert rows == read_dataset(dataset_file(full_run))
    metrics = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [1, 2, 3]
    judged = {r["pair_id"] for r in rows if r["label_source"] == "judge"}
    assert metrics[-1]["annotations_used"] == len(judged) > 0  # judge calls == distinct pairs
