"""A Bradley-Terry reward model on a run's pairs with TRL (``prefloop train reward-model``).

A sequence classifier with one output (``AutoModelForSequenceClassification``, ``num_labels=1``;
from a causal-LM checkpoint the score head is new) is trained with TRL's ``RewardTrainer`` on
-log sigma(r(x, y_c) - r(x, y_r) - margin), the run's ``margin`` column included (Bradley and
Terry 1952; TRL reward modelling docs). :func:`reward_scores` scores (prompt, response) pairs
with the same chat-template rendering, so a saved model can be checked after reloading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from prefloop.posttrain.common import TrainOutcome, peft_config, run_job, training_arguments
from prefloop.posttrain.config import PostTrainError, PostTrainingSpec, RunPairs
from prefloop.posttrain.logprobs import batch_tensors

REWARD_COLUMNS = ("prompt", "chosen", "rejected", "margin")


def train_reward_model(
    spec: PostTrainingSpec, dataset_dir: str | Path, output_dir: str | Path | None = None
) -> TrainOutcome:
    """Train a reward model on the run directory's pairs; save it with a model card.

    Why: a prefloop dataset's most direct product is a reward model for RLHF or best-of-n.
    """
    if spec.kind != "reward_model":
        raise PostTrainError(f"train_reward_model needs kind: reward_model, got {spec.kind!r}")

    def make_trainer(model_path: str, tokenizer: Any, pairs: RunPairs, out: Path) -> Any:
        from transformers import AutoModelForSequenceClassification
        from trl import RewardConfig, RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        return RewardTrainer(
            model=model,
            args=RewardConfig(max_length=spec.max_length, **training_arguments(spec, out)),
            train_dataset=pairs.dataset(REWARD_COLUMNS),
            processing_class=tokenizer,
            peft_config=peft_config(spec, "SEQ_CLS"),
        )

    return run_job(spec, dataset_dir, output_dir, make_trainer)


def reward_scores(
    model: Any, tokenizer: Any, prompts: Sequence[Any], responses: Sequence[Any]
) -> torch.Tensor:
    """(B,) reward of each (prompt, response) under a sequence classifier, in eval mode.

    Why: the check that a saved reward model scores exactly as the trained one did, and the
    way to use it on new responses.
    """
    ids, attention, _ = batch_tensors(tokenizer, prompts, responses)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits
    return logits[:, 0].float()
