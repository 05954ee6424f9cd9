"""The policy parts of the ActiveRun spec: the policy in the loop and post-training.

``trainer.policy`` (:class:`PolicySpec`, with ``trainer.kind: policy``) puts a causal LM in the
loop: the reward role serves its DPO implicit rewards and MC-dropout spread to the acquisition
rule (AE-DPO, AE-Borda, ADPO read them) and the trainer role takes DPO steps on each round's
labelled pairs.

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


class PolicySpec(SpecModel):
    """The policy in the loop (``trainer.kind: policy``): a causal LM trained by DPO each round."""

    model: str | None = None
    """The policy's starting model (also the frozen reference pi_ref): a local Hugging Face
    directory or an already downloaded Hub id. Required with ``trainer.kind: policy``."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    """MC-dropout rate on the final hidden state before the LM head (AE-DPO's
    ``llm_dropout``, 0.05)."""
    mc_samples: Annotated[int, Field(ge=2)] = 5
    """MC-dropout passes per response; their mean and std are the acquisition's mu and s
    (AE-DPO's ``num_samples``, 5)."""
    beta: Annotated[float, Field(gt=0.0)] = 0.1
    """DPO beta: the served rewards are beta (log pi - log pi_ref), the scale ADPO's gamma and
    AE-Borda's sigmoid use (0.1 in every seed recipe)."""
    learning_rate: Annotated[float, Field(gt=0.0)] = 5e-7
    """Learning rate of the in-loop DPO steps (RMSprop in AE-DPO, AdamW here; 5e-7)."""
    steps_per_round: Annotated[int, Field(ge=1)] = 1
    """DPO optimiser steps per round on the replay of labelled pairs."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Pairs per DPO step (sampled from every labelled pair so far)."""
    max_length: Annotated[int, Field(ge=8)] = 512
    """Longest prompt + response in tokens (AE-DPO's ``max_length``, 512); longer ones are
    cut from the right."""
    device: str = "cpu"
    """Torch device of the policy and the reference."""
