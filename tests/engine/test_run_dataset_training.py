"""A real run's directory loads with ``datasets.load_dataset(run_dir)`` and trains TRL's
DPOTrainer and RewardTrainer (two steps each) on tiny models built here from a config and a
toy tokenizer: no download, no weights from the Hub."""

from __future__ import annotations

import copy
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from datasets import load_dataset

from _tiny_llama import make_tiny_run, pair_texts, tiny_config, tiny_tokenizer
from prefloop import __version__
from prefloop.data.run_dataset import dataset_file, margin_of
from prefloop.data.writers import read_dataset
from prefloop.spec import load_activerun

trl = pytest.importorskip("trl", reason="trl (the dev extra) trains on the run's output")
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def run_dir(
    repo_root: Path, tmp_path_factory: pytest.TempPathFactory, feature_cache_dir: Path
) -> Iterator[Path]:
    """One round of the shrunk quickstart (DRTS, 8 pairs), written under umask 022."""
    out = tmp_path_factory.mktemp("trl") / "runs" / "tiny"
    yield make_tiny_run(repo_root, out, feature_cache_dir)


@pytest.fixture
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_run_dir_loads_as_a_dataset_with_its_provenance(run_dir: Path, tmp_path: Path) -> None:
    train = load_dataset(str(run_dir), cache_dir=str(tmp_path / "hf"))["train"]
    on_disk = read_dataset(dataset_file(run_dir))
    assert train.to_list() == on_disk == read_dataset(dataset_file(run_dir, "parquet"))
    assert len(train) >= 4 and not any(train["tie"])
    assert train.features["rationale"].dtype == "string"
    assert train["margin"] == [margin_of(r) for r in on_disk]
    ties = dataset_file(run_dir, "jsonl", "ties")
    n_ties = len(read_dataset(ties)) if ties.exists() else 0
    summary = yaml.safe_load((run_dir / "summary.json").read_text())
    assert summary["pairs_in_dataset"] == len(train) + n_ties
    front = yaml.safe_load((run_dir / "README.md").read_text().split("---\n")[1])
    run = load_activerun(run_dir / "activerun.yaml", [])
    assert front["prefloop"] == {
        "run": run.metadata.name,
        "method": "drts",
        "seed": 3,
        "judge": run.spec.judge.model_dump(mode="json", by_alias=True),
        "budget": run.spec.budget.model_dump(mode="json", by_alias=True),
        "source": "prefloop run",
        "prefloop_version": __version__,
        "pairs": len(train),
        "ties": n_ties,
        "ties_policy": "separate",
    }
    data_files = [p for p in (run_dir / "data").iterdir()] + [run_dir / "README.md"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in data_files} == {0o644}


def test_dpo_and_reward_trainers_run_on_the_run_dir(
    run_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    train = load_dataset(str(run_dir), cache_dir=str(tmp_path / "hf"))["train"]
    tokenizer = tiny_tokenizer(pair_texts(train.to_list()))
    common: dict[str, Any] = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "max_length": None,  # whole answers: the reward trainer drops longer pairs
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        "dataloader_num_workers": 0,
    }

    torch.manual_seed(0)
    policy = LlamaForCausalLM(tiny_config(tokenizer))
    before = [p.detach().clone() for p in policy.parameters()]
    dpo = trl.DPOTrainer(
        model=policy,
        ref_model=copy.deepcopy(policy),
        args=trl.DPOConfig(output_dir=str(tmp_path / "dpo"), **common),
        train_dataset=train,
        processing_class=tokenizer,
    )
    dpo.train()
    assert dpo.state.global_step == 2
    losses = [h["loss"] for h in dpo.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))

    def reward_losses(dataset: Any, name: str) -> list[float]:
        torch.manual_seed(0)
        model = LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1))
        trainer = trl.RewardTrainer(
            model=model,
            args=trl.RewardConfig(output_dir=str(tmp_path / name), **common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        trainer.train()
        assert trainer.state.global_step == 2
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]

    with_margin = reward_losses(train, "rm")
    without_margin = reward_losses(train.remove_columns("margin"), "rm-no-margin")
    assert len(with_margin) == 2 and all(torch.isfinite(torch.tensor(with_margin)))
    # the trainer reads the margin column: the same model and batches give another loss
    assert with_margin[0] != pytest.approx(without_margin[0])
