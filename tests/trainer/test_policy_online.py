"""AE-Borda-DPO online: every round's responses are sampled from the policy being trained.

A 3-round embedded run (tiny Llama policy, ``backend: policy`` pool entries, AE-Borda, a tiny
reward-model judge): the generation role records the policy version it sampled from and the
weights it held; each round's responses are then regenerated independently, from the model
directory with those weights loaded and the same seeds, and must be identical; the starting
weights give other responses from round 2 on, so the samples followed the training.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from transformers import LlamaForSequenceClassification

from _tiny_llama import (
    online_policy_overrides,
    save_tiny_causal_lm,
    tiny_config,
    tiny_tokenizer,
)
from prefloop.data.records import PromptItem
from prefloop.engine.build import build_embedded_roles
from prefloop.engine.checkpoint import derive_seed
from prefloop.engine.local_roles import LocalGeneration
from prefloop.engine.runner import execute
from prefloop.generation.base import Generated, PoolGenerator, Sampling
from prefloop.generation.policy_backend import PolicySampler
from prefloop.generation.transformers_backend import LoadedCausalLM, TransformersModel
from prefloop.spec import load_activerun
from prefloop.trainer.policy import PolicyModel

PROMPTS = ["name a colour", "count to three", "say hello", "pick a fruit", "name a day", "hi"]
SAMPLERS = ("policy-a", "policy-b", "policy-c")
NEW_TOKENS = 6


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class RecordingGeneration:
    """The generation role, noting the policy version and weights each call sampled with."""

    def __init__(self, inner: LocalGeneration, policy: PolicyModel) -> None:
        self.inner = inner
        self.policy = policy
        self.calls: list[tuple[int, dict[str, Any], int, list[PromptItem]]] = []

    def generate(self, items: list[PromptItem], *, seed: int) -> list[PromptItem]:
        weights = copy.deepcopy(self.policy.policy.state_dict())
        out = self.inner.generate(items, seed=seed)
        self.calls.append((self.policy.version, weights, seed, out))
        return out


def _reward_model(path: Path) -> Path:
    tokenizer = tiny_tokenizer(PROMPTS * 4)
    torch.manual_seed(0)
    LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _resample(model_dir: Path, weights: dict[str, Any] | None, items: list[PromptItem], seed: int):
    """Each sampler's answers from a fresh load of ``model_dir`` (with ``weights`` if given)."""
    lm = LoadedCausalLM.load("check", str(model_dir))
    if weights is not None:
        lm.model.load_state_dict(weights)
    bare = [PromptItem(it.prompt_id, it.prompt) for it in items]
    out = {}
    for name in SAMPLERS:
        sampler = TransformersModel(name, str(model_dir), sampling=Sampling(NEW_TOKENS))
        answers = sampler._answer_with(lm, bare, seed)
        out[name] = {k: a.text for k, a in answers.items() if isinstance(a, Generated)}
    return out


def test_online_responses_come_from_the_current_policy_version(
    repo_root: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt_id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)
        )
    )
    model_dir = save_tiny_causal_lm(tmp_path / "lm", PROMPTS * 3, seed=1)
    manifest = repo_root / "examples" / "quickstart.yaml"
    judge_dir = _reward_model(tmp_path / "rm")
    run = load_activerun(
        manifest, online_policy_overrides(prompts, SAMPLERS, judge_dir, model_dir, NEW_TOKENS)
    )
    out = tmp_path / "run"
    roles, policy, _ = build_embedded_roles(run, out, manifest.parent)
    assert isinstance(policy, PolicyModel) and isinstance(roles.generation, LocalGeneration)
    pool = roles.generation.generator
    assert isinstance(pool, PoolGenerator)
    assert all(isinstance(b, PolicySampler) and b.policy is policy for b in pool.backends)
    recorder = RecordingGeneration(roles.generation, policy)
    roles.generation = recorder
    result = execute(
        run, manifest_dir=manifest.parent, output=str(out), roles=roles, console=Console(quiet=True)
    )

    assert [v for v, *_ in recorder.calls] == [0, 1, 2]  # round r samples from version r
    for r, (_, weights, seed, items) in enumerate(recorder.calls):
        assert seed == derive_seed(7, r, "generation")
        sampled = {
            name: {
                it.prompt_id: resp.text
                for it in items
                for resp in it.responses
                if resp.model == name
            }
            for name in SAMPLERS
        }
        assert _resample(model_dir, weights, items, seed) == sampled, f"round {r}"
        if r == 2:  # the starting weights answer otherwise: the samples followed the training
            assert _resample(model_dir, None, items, seed) != sampled
    rows = result.rows
    assert rows and {r["chosen_model"] for r in rows} <= set(SAMPLERS)
    texts = {
        (it.prompt_id, resp.text)
        for *_, items in recorder.calls
        for it in items
        for resp in it.responses
    }
    assert all((r["prompt_id"], r["chosen"][-1]["content"]) in texts for r in rows)


def test_policy_samples_need_the_policy_in_the_generation_role(
    repo_root: Path, tmp_path: Path
) -> None:
    """Without the loop's policy object ``backend: policy`` is refused by name; without
    ``trainer.kind: policy`` the manifest is."""
    from prefloop.engine.build import build_generator
    from prefloop.spec import SpecError

    models = "[{name: a, backend: policy}, {name: b, backend: policy}]"
    base = [
        "spec.responses.source=models",
        f"spec.responses.models={models}",
        "spec.judge.kind=reward_model",
        "spec.evaluation.shadowRandom=false",
        f"spec.judge.rewardModel={{path: {tmp_path}}}",
    ]
    manifest = repo_root / "examples" / "quickstart.yaml"
    with pytest.raises(SpecError, match=r"trainer\.kind"):
        load_activerun(manifest, base)
    run = load_activerun(
        manifest, [*base, "spec.trainer.kind=policy", f"spec.trainer.policy.model={tmp_path}"]
    )
    with pytest.raises(ValueError, match=r"'a': backend: policy.*none was given"):
        build_generator(run, manifest.parent)
