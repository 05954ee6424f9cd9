"""The dataset card of a run directory: ``README.md`` with YAML front matter and a short page.

``datasets.load_dataset(run_dir)`` reads this card first. Its ``configs:`` block lists the data
files of each config, so the loader reads exactly those and never guesses from the other files
of the run directory (metrics, summary, checkpoints); its ``dataset_info.features`` gives every
column its type, so a JSONL file whose ``rationale`` is ``null`` in every row still loads as a
string column and two runs can be concatenated. The ``prefloop:`` block records where the data
came from (run, method, seed, judge, budget, prefloop version, counts). The format is the Hugging
Face dataset card (https://huggingface.co/docs/hub/datasets-cards,
https://huggingface.co/docs/hub/datasets-manual-configuration).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from prefloop import __version__

MARGIN_DEFINITION = (
    "`chosen_score - rejected_score` when both stored scores are known (the scores the "
    "stored-score oracle compares, in their own units; negative when a sampled label went "
    "against them), otherwise `2 * probability_chosen - 1`, the labeller's confidence in "
    "[-1, 1] (1 for a hard label)"
)
"""What the ``margin`` column holds; TRL's RewardTrainer subtracts it inside its loss."""


@dataclass(frozen=True)
class DatasetProvenance:
    """Where a run's preference data came from, written to the card's ``prefloop:`` block."""

    run: str
    """The run name (``metadata.name``)."""
    method: str
    """The acquisition rule(s) that chose the pairs."""
    judge: str | dict[str, Any]
    """The labeller: the manifest's judge settings, or the judge names found in the rows."""
    seed: int | None = None
    """The run seed; None when unknown (a dataset rebuilt from Kafka)."""
    budget: dict[str, Any] = field(default_factory=dict)
    """The manifest's budget block (empty when unknown)."""
    source: str = "prefloop run"
    """What wrote the files: ``prefloop run`` or ``prefloop export --from-kafka``."""
    prefloop_version: str = __version__
    """The prefloop version that wrote the files."""


@dataclass(frozen=True)
class CardConfig:
    """One ``configs:`` entry: a config name and the file holding its single ``train`` split."""

    name: str
    path: str
    """Path of the data file relative to the run directory (POSIX separators)."""
    rows: int


def render_card(
    provenance: DatasetProvenance,
    configs: list[CardConfig],
    arrow_schema: Any,
    *,
    ties_policy: str,
    ties: int,
) -> str:
    """The card text: YAML front matter (configs, features, provenance) and a Markdown body.

    Why: the card is what makes the run directory a dataset that ``load_dataset`` and the Hub
    read as one, with the types and the origin of the data stated, not inferred.

    Args:
        provenance: the run's origin.
        configs: the configs, the first being the default one.
        arrow_schema: the ``pyarrow.Schema`` of the written files (the same for every config).
        ties_policy: ``separate``, ``include`` or ``drop`` (see the ``output.ties`` spec field).
        ties: the number of tied pairs of the run.
    """
    from datasets import DatasetInfo, Features
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    pairs = configs[0].rows if configs else 0
    card = DatasetCardData(
        configs=[
            {
                "config_name": c.name,
                "data_files": [{"split": "train", "path": c.path}],
                **({"default": True} if i == 0 else {}),
            }
            for i, c in enumerate(configs)
        ],
        prefloop={**asdict(provenance), "pairs": pairs, "ties": ties, "ties_policy": ties_policy},
    )
    features = Features.from_arrow_schema(arrow_schema)
    infos = DatasetInfosDict({c.name: DatasetInfo(features=features) for c in configs})
    infos.to_dataset_card_data(card)
    return "---\n" + card.to_yaml() + "\n---\n" + _body(provenance, configs, ties_policy, ties)


def _body(p: DatasetProvenance, configs: list[CardConfig], ties_policy: str, ties: int) -> str:
    judge = (
        p.judge if isinstance(p.judge, str) else ", ".join(f"{k}={v}" for k, v in p.judge.items())
    )
    budget = ", ".join(f"{k}={v}" for k, v in p.budget.items()) or "unknown"
    tie_text = {
        "separate": "kept out of the training files, in the `ties` config",
        "include": "kept in the training files (flagged by `tie`)",
        "drop": "dropped",
    }[ties_policy]
    lines = [
        f"# prefloop preference data: run `{p.run}`",
        "",
        f"Pairs chosen by active learning ({p.source}, prefloop {p.prefloop_version}).",
        "",
        "| | |",
        "|---|---|",
        f"| method | {p.method} |",
        f"| seed | {'unknown' if p.seed is None else p.seed} |",
        f"| judge | {judge} |",
        f"| budget | {budget} |",
        f"| pairs | {configs[0].rows if configs else 0} |",
        f"| tied pairs | {ties}, {tie_text} |",
        "",
        "```python",
        "from datasets import load_dataset",
        f'train = load_dataset("path/to/{p.run}")["train"]  # DPO / reward-model training',
        "```",
        "",
        "| config | file | rows |",
        "|---|---|---|",
        *(f"| `{c.name}` | `{c.path}` | {c.rows} |" for c in configs),
        "",
        "Columns: `prompt`, `chosen`, `rejected` are chat message lists (TRL's conversational "
        "format); `chosen_score` / `rejected_score` are the stored judge scores (null when "
        "unknown); `probability_chosen` is the labeller's probability that `chosen` is better; "
        f"`margin` is {MARGIN_DEFINITION}; `label_source` is `judge`, `identity` (DeltaQwen) or "
        "`pseudo` (ADPO); `tie` marks pairs the judge could not separate.",
        "",
    ]
    return "\n".join(lines)


def _pairs_text(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in mapping.items())
