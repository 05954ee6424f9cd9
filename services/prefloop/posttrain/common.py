"""What the DPO and reward-model jobs share: tokenizer, TRL arguments, LoRA, saving with a card.

Every job loads its model from a local directory (or an already downloaded Hub id; prefloop
never downloads), trains with TRL, merges LoRA adapters if any, and saves the model, the
tokenizer and a model card into one Hugging Face directory that ``from_pretrained`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefloop.posttrain.config import (
    PostTrainError,
    PostTrainingSpec,
    RunPairs,
    deepspeed_config_path,
    load_pairs,
    output_dir_for,
)
from prefloop.posttrain.model_card import render_model_card, write_model_card

LORA_MISSING = (
    "lora.enabled needs peft, which is not installed; install the extra: "
    "pip install 'prefloop[lora]' (or turn LoRA off)"
)


@dataclass
class TrainOutcome:
    """What a job produced: where the model is, the steps taken, the logged losses."""

    output_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    model: Any = None
    """The trained model in memory (LoRA merged), as saved."""


def require_model(spec: PostTrainingSpec) -> str:
    """The model path; a clear error when the settings name none."""
    if not spec.model:
        raise PostTrainError("model: give the starting model (--model PATH, a local HF directory)")
    return spec.model


def load_tokenizer(model_path: str) -> Any:
    """The model's tokenizer, with a pad token (the EOS token when the model defines none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def peft_config(spec: PostTrainingSpec, task_type: str) -> Any:
    """A ``peft.LoraConfig`` when LoRA is on, else None; a clear error without peft."""
    if not spec.lora.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise PostTrainError(LORA_MISSING) from exc
    lora = spec.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules) or "all-linear",
        task_type=task_type,
    )


def training_arguments(spec: PostTrainingSpec, output_dir: Path) -> dict[str, Any]:
    """The ``transformers.TrainingArguments`` fields every job sets the same way.

    Why: one mapping from prefloop's settings to TRL's, so DPO, SimPO and reward-model jobs
    agree on epochs, batch, seed, precision, DeepSpeed and on never reporting to a tracker.
    """
    return {
        "output_dir": str(output_dir / "checkpoints"),
        "num_train_epochs": spec.epochs,
        "per_device_train_batch_size": spec.batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
        "learning_rate": spec.learning_rate,
        "seed": spec.seed,
        "bf16": spec.bf16,
        "use_cpu": spec.use_cpu,
        "deepspeed": deepspeed_config_path(spec.deepspeed),
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "dataloader_num_workers": 0,
    }


def finish(
    trainer: Any,
    tokenizer: Any,
    spec: PostTrainingSpec,
    *,
    dataset_dir: Path,
    provenance: dict[str, Any],
    pairs: int,
    output_dir: Path,
) -> TrainOutcome:
    """Merge LoRA, save model + tokenizer + card in Hugging Face format; the outcome.

    Why: the output must load with plain ``from_pretrained`` (no peft needed) and say where
    its data came from.
    """
    model = trainer.model
    if spec.lora.enabled and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    metrics = {"steps": float(trainer.state.global_step)}
    if losses:
        metrics.update({"first_loss": losses[0], "last_loss": losses[-1]})
    card = render_model_card(
        spec, dataset_dir=dataset_dir, provenance=provenance, pairs=pairs, metrics=metrics
    )
    write_model_card(output_dir, card)
    return TrainOutcome(output_dir, int(trainer.state.global_step), losses, model)


TrainerFactory = Callable[[str, Any, RunPairs, Path], Any]
"""(model path, tokenizer, pairs, output dir) -> a TRL trainer ready to ``train()``."""


def run_job(
    spec: PostTrainingSpec,
    dataset_dir: str | Path,
    output_dir: str | Path | None,
    make_trainer: TrainerFactory,
) -> TrainOutcome:
    """Read the run's pairs, build the job's trainer, train, save with a card.

    Why: the DPO and reward-model jobs differ only in the trainer they build.
    """
    pairs = load_pairs(dataset_dir)
    out = output_dir_for(spec, pairs.run_dir, output_dir)
    model_path = require_model(spec)
    tokenizer = load_tokenizer(model_path)
    trainer = make_trainer(model_path, tokenizer, pairs, out)
    trainer.train()
    return finish(
        trainer,
        tokenizer,
        spec,
        dataset_dir=pairs.run_dir,
        provenance=pairs.provenance,
        pairs=len(pairs.rows),
        output_dir=out,
    )
