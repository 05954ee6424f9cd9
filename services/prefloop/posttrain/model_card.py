"""The model card (``README.md``) of a trained model: which dataset, which run, which settings.

Hugging Face reads the YAML front matter (``library_name``, ``base_model``, ``tags``,
https://huggingface.co/docs/hub/model-cards); the ``prefloop:`` block copies the dataset card's
provenance (run, method, seed, judge, budget) and the training settings, so a model can always
be traced back to the labels that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prefloop import __version__
from prefloop.data.atomic import atomic_write_text
from prefloop.spec_posttrain import PostTrainingSpec

TASK_TAGS = {"dpo": ["dpo", "trl"], "reward_model": ["reward-model", "trl"]}


def render_model_card(
    spec: PostTrainingSpec,
    *,
    dataset_dir: Path,
    provenance: dict[str, Any],
    pairs: int,
    metrics: dict[str, float],
) -> str:
    """The card text: front matter (base model, tags, prefloop block) and a short page.

    Why: a trained model without its data's origin cannot be audited; the card names the run
    directory and the run's own provenance, not a guess.
    """
    trainer = "SimPO (CPOTrainer)" if spec.kind == "dpo" and spec.loss == "simpo" else None
    trainer = trainer or ("DPOTrainer" if spec.kind == "dpo" else "RewardTrainer")
    front = {
        "library_name": "transformers",
        "base_model": spec.model,
        "tags": [*TASK_TAGS[spec.kind], "prefloop"],
        "prefloop": {
            "dataset": str(dataset_dir),
            "dataset_provenance": provenance,
            "pairs": pairs,
            "training": spec.model_dump(mode="json", by_alias=True),
            "trainer": trainer,
            "metrics": metrics,
            "prefloop_version": __version__,
        },
    }
    run = provenance.get("run", "unknown")
    what = "policy" if spec.kind == "dpo" else "Bradley-Terry reward model"
    loss = f" ({spec.loss} loss, beta {spec.beta})" if spec.kind == "dpo" else ""
    body = (
        f"# {what} trained on prefloop run `{run}`\n\n"
        f"Trained with TRL's {trainer}{loss} from `{spec.model}` on {pairs} preference pairs "
        f"of the run directory `{dataset_dir}`.\n\n"
        "| dataset | |\n|---|---|\n"
        f"| run | `{run}` |\n"
        f"| acquisition method | `{provenance.get('method', 'unknown')}` |\n"
        f"| seed | `{provenance.get('seed')}` |\n"
        f"| judge | `{provenance.get('judge')}` |\n"
        f"| budget | `{provenance.get('budget')}` |\n\n"
        "Written by `prefloop train`; the settings are in the `prefloop.training` block above.\n"
    )
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body


def write_model_card(directory: Path, text: str) -> Path:
    """Write ``README.md`` into the saved model's directory (atomically)."""
    path = directory / "README.md"
    atomic_write_text(path, text)
    return path
