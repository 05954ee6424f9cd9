"""DPO, IPO and SimPO on a run's preference pairs with TRL (``prefloop train dpo``).

* ``loss: sigmoid`` - DPO (Rafailov et al., https://arxiv.org/abs/2305.18290), TRL ``DPOTrainer``
  with ``loss_type=["sigmoid"]``; the frozen reference is a copy of the starting model (or the
  model with its LoRA adapters disabled);
* ``loss: ipo`` - IPO (https://arxiv.org/abs/2310.12036), the same trainer with ``["ipo"]``
  (beta is IPO's tau);
* ``loss: simpo`` - SimPO (https://arxiv.org/abs/2405.14734), reference-free; TRL implements it
  in ``CPOTrainer`` with ``loss_type="simpo"`` and ``cpo_alpha=0`` (the TRL docs' recipe).

The pairs are the run directory's ``prompt``/``chosen``/``rejected`` message lists (TRL's
conversational preference format); the tokenizer's chat template renders them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefloop.posttrain.common import TrainOutcome, peft_config, run_job, training_arguments
from prefloop.posttrain.config import PostTrainError, PostTrainingSpec, RunPairs


def _trainer(spec: PostTrainingSpec, model: Any, tokenizer: Any, train: Any, out: Path) -> Any:
    """The TRL trainer for ``spec.loss``."""
    args = training_arguments(spec, out)
    peft = peft_config(spec, "CAUSAL_LM")
    if spec.loss == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        config = CPOConfig(
            loss_type="simpo",
            cpo_alpha=0.0,
            beta=spec.beta,
            simpo_gamma=spec.simpo_gamma,
            max_length=spec.max_length,
            **args,
        )
        return CPOTrainer(
            model=model,
            args=config,
            train_dataset=train,
            processing_class=tokenizer,
            peft_config=peft,
        )
    from trl import DPOConfig, DPOTrainer

    dpo_config = DPOConfig(
        loss_type=[spec.loss], beta=spec.beta, max_length=spec.max_length, **args
    )
    return DPOTrainer(
        model=model,
        args=dpo_config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=peft,
    )


def train_dpo(
    spec: PostTrainingSpec, dataset_dir: str | Path, output_dir: str | Path | None = None
) -> TrainOutcome:
    """Train the starting causal LM on the run directory's pairs; save it with a model card.

    Why: the last step from a prefloop dataset to an aligned model, in one call that the CLI
    and (later) the operator's Job share.
    """
    if spec.kind != "dpo":
        raise PostTrainError(f"train_dpo needs kind: dpo, got {spec.kind!r}")

    def make_trainer(model_path: str, tokenizer: Any, pairs: RunPairs, out: Path) -> Any:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_path)
        return _trainer(spec, model, tokenizer, pairs.dataset(), out)

    return run_job(spec, dataset_dir, output_dir, make_trainer)
