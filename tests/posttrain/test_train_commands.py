"""``prefloop train dpo|reward-model`` on a real run directory with tiny models (CPU).

One DPO epoch lowers the DPO loss on the training pairs; a trained reward model scores the same
after saving and reloading; every saved model carries a card naming the dataset's run; bad input
exits 2 with the problem named; the DeepSpeed path runs only where DeepSpeed and a GPU exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from prefloop.cli import main
from prefloop.posttrain.config import (
    PostTrainError,
    PostTrainingSpec,
    deepspeed_config_path,
    load_pairs,
)
from prefloop.posttrain.logprobs import dpo_loss, sequence_logprobs
from prefloop.posttrain.reward_model import reward_scores, train_reward_model

pytest.importorskip("trl", reason="trl (the dev extra) runs the trainers")
pytestmark = pytest.mark.model


def _card(directory: Path) -> dict[str, Any]:
    front: dict[str, Any] = yaml.safe_load((directory / "README.md").read_text().split("---\n")[1])
    return front


def _dpo_loss(policy: Any, ref: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    prompts = [r["prompt"] for r in rows]
    logp = {
        (name, col): sequence_logprobs(model, tokenizer, prompts, [r[col] for r in rows])
        for name, model in (("policy", policy), ("ref", ref))
        for col in ("chosen", "rejected")
    }
    loss = dpo_loss(
        logp["policy", "chosen"],
        logp["policy", "rejected"],
        logp["ref", "chosen"],
        logp["ref", "rejected"],
        beta=0.1,
    )
    return float(loss)


def test_one_dpo_epoch_lowers_the_dpo_loss(
    run_dir: Path, tiny_lm_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "dpo"
    argv = ["train", "dpo", "--dataset", str(run_dir), "--model", str(tiny_lm_dir)]
    argv += ["--output", str(out), "--epochs", "1", "--batch-size", "2"]
    argv += ["--learning-rate", "5e-3", "--beta", "0.1", "--cpu"]
    assert main(argv) == 0
    pairs = load_pairs(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ref = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir)).eval()
    trained = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    before = _dpo_loss(ref, ref, tokenizer, pairs.rows)
    after = _dpo_loss(trained, ref, tokenizer, pairs.rows)
    assert before == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-6)
    assert after < before - 1e-3
    card = _card(out)["prefloop"]
    assert card["dataset"] == str(run_dir)
    assert card["dataset_provenance"]["run"] == pairs.provenance["run"]
    assert card["dataset_provenance"]["method"] == "drts"
    assert card["dataset_provenance"]["seed"] == 3
    assert {"judge", "budget"} <= set(card["dataset_provenance"])
    assert card["pairs"] == len(pairs.rows)
    assert card["training"]["loss"] == "sigmoid" and card["trainer"] == "DPOTrainer"


def test_reward_model_scores_the_same_after_export_and_reload(
    run_dir: Path, tiny_lm_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = PostTrainingSpec(
        kind="reward_model",
        model=str(tiny_lm_dir),
        epochs=1,
        batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
    )
    outcome = train_reward_model(spec, run_dir, tmp_path / "rm")
    assert outcome.steps >= 1 and len(outcome.losses) == outcome.steps
    rows = load_pairs(run_dir).rows
    prompts = [r["prompt"] for r in rows] * 2
    responses = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    tokenizer = AutoTokenizer.from_pretrained(str(outcome.output_dir))
    trained = reward_scores(outcome.model, tokenizer, prompts, responses)
    reloaded_model = AutoModelForSequenceClassification.from_pretrained(str(outcome.output_dir))
    reloaded = reward_scores(reloaded_model, tokenizer, prompts, responses)
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=1e-6)
    assert trained.std() > 0  # a real score head, not a constant
    card = _card(outcome.output_dir)
    assert card["prefloop"]["trainer"] == "RewardTrainer"
    assert card["prefloop"]["dataset_provenance"]["method"] == "drts"
    assert "reward-model" in card["tags"]


@pytest.mark.parametrize("loss", ["ipo", "simpo"])
def test_ipo_and_simpo_with_lora_save_a_plain_model(
    run_dir: Path, tiny_lm_dir: Path, tmp_path: Path, loss: str
) -> None:
    pytest.importorskip("peft", reason="LoRA needs the lora extra (peft)")
    from transformers import AutoModelForCausalLM

    out = tmp_path / loss
    argv = ["train", "dpo", "--dataset", str(run_dir), "--model", str(tiny_lm_dir)]
    argv += ["--output", str(out), "--loss", loss, "--lora", "--epochs", "1"]
    argv += ["--batch-size", "4", "--learning-rate", "1e-3", "--cpu"]
    assert main(argv) == 0
    before = AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir))
    after = AutoModelForCausalLM.from_pretrained(str(out))  # merged: loads without peft
    assert not (out / "adapter_config.json").exists()
    changed = [
        name
        for (name, a), b in zip(before.named_parameters(), after.parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert changed and all("proj" in n for n in changed)  # only the adapted linear layers
    assert _card(out)["prefloop"]["training"]["loss"] == loss


def test_bad_input_exits_2_naming_the_problem(
    tmp_path: Path, tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "reward-model", "--dataset", str(tmp_path), "--model", str(tiny_lm_dir)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert "no README.md dataset card" in capsys.readouterr().err
    with pytest.raises(PostTrainError, match="neither a shipped config"):
        deepspeed_config_path(str(tmp_path / "missing.json"))


def test_zero3_config_ships_with_the_package() -> None:
    path = deepspeed_config_path("zero3")
    assert path is not None
    config = json.loads(Path(path).read_text())
    assert config["zero_optimization"]["stage"] == 3
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # filled in by the HF trainer


def _deepspeed_gpu_reason() -> str:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return "DeepSpeed is not installed (extra: deepspeed)"
    return "" if torch.cuda.is_available() else "no CUDA GPU on this machine"


@pytest.mark.skipif(bool(_deepspeed_gpu_reason()), reason=_deepspeed_gpu_reason() or "runs")
def test_dpo_with_deepspeed_zero3_on_a_gpu(
    run_dir: Path, tiny_lm_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    argv = ["train", "dpo", "--dataset", str(run_dir), "--model", str(tiny_lm_dir)]
    argv += ["--output", str(out), "--deepspeed", "zero3", "--batch-size", "2"]
    assert main(argv) == 0
    assert (out / "config.json").exists()


def test_train_manifest_runs_spec_post_training_on_the_run_directory(
    run_dir: Path, tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``prefloop train manifest RUN.yaml``: the operator's post-training Job command."""
    manifest = yaml.safe_load((run_dir / "activerun.yaml").read_text())
    manifest["spec"]["output"]["dir"] = str(run_dir)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert main(["train", "manifest", str(path)]) == 2  # no spec.postTraining
    assert "spec.postTraining is not set" in capsys.readouterr().err

    manifest["spec"]["postTraining"] = {
        "kind": "reward_model",
        "model": str(tiny_lm_dir),
        "outputDir": str(tmp_path / "out-{kind}"),
        "epochs": 1,
        "batchSize": 2,
        "useCpu": True,
    }
    path.write_text(yaml.safe_dump(manifest))
    assert main(["train", "manifest", str(path)]) == 0
    card = _card(tmp_path / "out-reward_model")["prefloop"]
    assert card["dataset"] == str(run_dir) and card["trainer"] == "RewardTrainer"
    assert card["pairs"] == len(load_pairs(run_dir).rows)
