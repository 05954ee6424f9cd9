"""The post-training part of the ActiveRun spec: train a model on a run's preference dataset.

``spec.postTraining`` holds the same settings as ``prefloop train dpo|reward-model`` (the CLI
builds one :class:`PostTrainingSpec` from its flags), so the operator can later run the training
as a Kubernetes Job after the run. ``kind: dpo`` trains a causal LM with TRL's ``DPOTrainer``
(sigmoid DPO or IPO) or ``CPOTrainer`` (SimPO, which TRL implements there with ``cpo_alpha=0``);
``kind: reward_model`` trains a Bradley-Terry sequence classifier with TRL's ``RewardTrainer``.
LoRA (peft, extra ``lora``) and DeepSpeed ZeRO-3 (extra ``deepspeed``) are optional.

Kept apart from :mod:`prefloop.spec` (which imports it) so the trainers can read their settings
without the rest of the spec; it imports nothing heavy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from prefloop.spec_base import SpecModel

DpoLoss = Literal["sigmoid", "ipo", "simpo"]
PostTrainingKind = Literal["dpo", "reward_model"]


class LoraSpec(SpecModel):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = False
    """Train LoRA adapters (needs the ``lora`` extra: peft); the saved model is merged."""
    r: Annotated[int, Field(ge=1)] = 8
    """Adapter rank (the AE-DPO QLoRA recipe uses 8)."""
    alpha: Annotated[int, Field(ge=1)] = 32
    """LoRA scaling alpha."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    """Dropout on the adapter inputs."""
    target_modules: list[str] = []  # noqa: RUF012 (pydantic copies it per instance)
    """Module names to adapt; empty: every linear layer (peft's ``all-linear``)."""


class PostTrainingSpec(SpecModel):
    """Training a model on the run's dataset (``prefloop train`` takes the same settings)."""

    kind: PostTrainingKind = "dpo"
    """``dpo``: a policy (causal LM) by preference optimisation; ``reward_model``: a
    Bradley-Terry sequence-classification reward model."""
    model: str | None = None
    """The starting model: a local Hugging Face directory or an already downloaded Hub id
    (nothing is downloaded). Required to train."""
    output_dir: str = "{runDir}/model-{kind}"
    """Where the trained model is saved in Hugging Face format (``{runDir}`` and ``{kind}``
    are filled in)."""
    loss: DpoLoss = "sigmoid"
    """DPO only: ``sigmoid`` (DPO), ``ipo`` (IPO) or ``simpo`` (SimPO, reference-free)."""
    beta: Annotated[float, Field(gt=0.0)] = 0.1
    """DPO only: the KL strength beta (IPO's tau; SimPO's reward scale)."""
    simpo_gamma: Annotated[float, Field(ge=0.0)] = 0.5
    """SimPO only: the target reward margin."""
    epochs: Annotated[float, Field(gt=0.0)] = 1.0
    """Passes over the dataset."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Pairs per device per step."""
    gradient_accumulation_steps: Annotated[int, Field(ge=1)] = 1
    """Steps whose gradients are summed before one optimiser update."""
    learning_rate: Annotated[float, Field(gt=0.0)] = 5e-7
    """Peak learning rate (the AE-DPO and ADPO recipes use 5e-7)."""
    max_length: Annotated[int, Field(ge=8)] | None = 1024
    """Longest prompt + response in tokens (longer pairs are truncated); null: no limit."""
    seed: int = 0
    """Seed of the trainer (shuffling, initialisation of new heads, dropout)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision (GPUs that support it)."""
    use_cpu: bool = False
    """Train on the CPU even where a GPU exists."""
    lora: LoraSpec = LoraSpec()
    """Optional LoRA adapters."""
    deepspeed: str | None = None
    """A DeepSpeed config: ``zero3`` (the ZeRO-3 config shipped with prefloop) or a path to a
    JSON file; launch with ``accelerate launch`` or ``deepspeed`` (docs/training.md)."""
